"""Cohorts of every format into one inventory: the dispatch by ``format`` above the sources
(``mcsp.bids`` discovers BIDS recordings, ``mcsp.imports`` reads ROI time series that arrive
parcellated), so that neither imports the other. ``mcsp cohort check`` and the workflow's
inventory rule call :func:`check_cohort`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mcsp.bids import USABLE, Inventory, UnusableCohortError, build_inventory
from mcsp.exceptions import CohortError, ConfigError
from mcsp.io import write_text

DEFAULT_CONFIG = Path("config/config.yaml")  # relative to the working directory, as in the CLI
PROBLEM = "Problem:"


def build_cohort_inventory(cohort: dict, fmri: Mapping[str, Any] | None = None) -> Inventory:
    """The inventory of a validated cohort of format ``bids``, ``abide_pcp`` or ``xcpd``.

    ``fmri``: the config's ``fmri`` block; imported cohorts take its ``max_constant_roi_fraction``.
    """
    if cohort["format"] == "bids":
        return build_inventory(cohort)
    from mcsp.imports import build_imported_inventory

    limit = (fmri or {}).get("max_constant_roi_fraction")
    return build_imported_inventory(cohort, max_constant_roi_fraction=limit)


def config_fmri(config_file: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """The config's ``fmri`` block and the config file it belongs to: ``config_file``, else
    ``config/config.yaml`` (its schema defaults when that file is absent)."""
    from mcsp.config import load_config, schema_defaults

    path = Path(config_file) if config_file is not None else DEFAULT_CONFIG
    if config_file is not None or path.is_file():
        return load_config(path)["fmri"], str(path)
    return schema_defaults("config", "fmri"), str(path)


def confounds_notes(
    inventory: Inventory, fmri: Mapping[str, Any], config_file: str = str(DEFAULT_CONFIG)
) -> list[str]:
    """Which confound strategies the cohort's first usable fMRIPrep confounds file supports.

    One line listing nilearn's strategies that fit and those that do not (with what is missing);
    a line starting with ``Problem:`` when the configured ``fmri.strategy`` does not fit (the file,
    its missing columns and the ``strategy_options`` that would fit), or FD/DVARS censoring needs
    a column the file lacks. No lines when no usable run has a preprocessed BOLD.
    """
    from mcsp.fmri import check_confounds, run_files

    table = inventory.table
    rows = table[(table["modality"] == "fmri") & table["status"].isin(USABLE)]
    derivatives = [str(d) for d in rows["derivative"].dropna() if str(d) not in ("", "n/a")]
    if not derivatives:
        return []
    confounds = run_files(derivatives[0])["confounds"]
    if not confounds.is_file():
        return []
    check = check_confounds(confounds, fmri)
    fits = [name for name, fit in check.presets.items() if fit.ok]
    aroma = " (it also needs the AROMA BOLD of fMRIPrep < 23.1)" if "ica_aroma" in fits else ""
    misfits = [
        f"{name} (missing {_columns(fit.missing)})"
        for name, fit in check.presets.items()
        if not fit.ok
    ]
    lines = [
        f"fMRI confounds ({confounds.name}): fits {', '.join(fits) or 'no strategy'}{aroma}"
        + (f"; does not fit {', '.join(misfits)}" if misfits else "")
    ]
    chosen = check.chosen
    if chosen.strategy not in check.presets:
        import nilearn

        lines.append(
            f"{PROBLEM} fmri.strategy {chosen.strategy!r} of {config_file} is not a strategy of "
            f"nilearn {nilearn.__version__}'s load_confounds_strategy; every fMRI run of the "
            f"cohort would be excluded. Fix: set it to one of {', '.join(check.presets)}."
        )
    elif not chosen.ok:
        given = fmri.get("strategy_options") or {}
        with_options = f" with strategy_options {_flow(given)}" if given else ""
        if check.fix is not None:
            fix = f"set fmri.strategy_options: {_flow(check.fix)} in {config_file}"
        else:
            fix = (
                "no strategy_options make it fit: use fMRIPrep's full confounds output, or set "
                f"fmri.strategy in {config_file} to one that fits ({', '.join(fits) or 'none'})"
            )
        lines.append(
            f"{PROBLEM} {confounds} does not fit fmri.strategy {chosen.strategy!r}{with_options} "
            f"of {config_file}: missing {_columns(chosen.missing)}; every fMRI run of the "
            f"cohort would be excluded. Fix: {fix}."
        )
    if check.censor_problem:
        lines.append(f"{PROBLEM} {check.censor_problem} (fmri block of {config_file})")
    return lines


_EXPANSIONS = ("_derivative1_power2", "_derivative1", "_power2")  # longest first
_ORDER = ("_derivative1", "_power2", "_derivative1_power2")


def _columns(missing: tuple[str, ...]) -> str:
    """``18 columns: _derivative1, _power2, _derivative1_power2 of trans_x, …``."""
    expansions: dict[str, list[str]] = {}
    plain = []
    for name in missing:
        suffix = next((s for s in _EXPANSIONS if name.endswith(s)), None)
        if suffix is None:
            plain.append(name)
        else:
            expansions.setdefault(name.removesuffix(suffix), []).append(suffix)
    groups: dict[tuple[str, ...], list[str]] = {}
    for base, suffixes in expansions.items():
        groups.setdefault(tuple(sorted(suffixes, key=_ORDER.index)), []).append(base)
    parts = [f"{', '.join(s)} of {', '.join(bases)}" for s, bases in groups.items()] + plain
    return (f"{len(missing)} columns: " if len(missing) > 1 else "") + "; ".join(parts)


def _flow(options: Mapping[str, Any]) -> str:
    """``{motion: basic}``: options as they are written in the YAML config."""
    return yaml.safe_dump(dict(options), default_flow_style=True, sort_keys=False).strip()


def check_cohort(
    cohort_file: str | Path,
    out: str | Path | None = None,
    *,
    strict: bool = False,
    fmri: Mapping[str, Any] | None = None,
) -> Inventory:
    """Load a cohort file, build its inventory, write the TSV and a ``.txt`` summary beside it.

    ``out`` defaults to ``results/NAME/inventory.tsv`` (relative to the working directory).
    ``fmri`` is the config's ``fmri`` block (default: ``config_fmri()``); one confounds file is
    checked against its strategy and the result added to the inventory's notes (see
    ``confounds_notes``). With ``strict``, any excluded recording or a ``Problem:`` note raises
    CohortError once the table is written. A cohort with no usable recording gets its table and
    summary written too (every row with its reason), then raises ``UnusableCohortError``.
    """
    from mcsp.config import load_cohort

    config_file = str(DEFAULT_CONFIG)
    if fmri is None:
        fmri, config_file = config_fmri()
    cohort = load_cohort(cohort_file)
    if cohort["format"] == "synthetic":
        raise ConfigError(
            f"{cohort_file}: format synthetic has no input folder to inventory; its inventory is "
            "written with its contract files (`mcsp cohort synth FILE --out results/NAME`)."
        )
    unusable: UnusableCohortError | None = None
    try:
        inventory = build_cohort_inventory(cohort, fmri)
    except UnusableCohortError as err:
        unusable, inventory = err, err.inventory
    if cohort["format"] == "bids" and unusable is None:
        notes = confounds_notes(inventory, fmri, config_file)
        inventory = dataclasses.replace(inventory, notes=(*inventory.notes, *notes))
    out = Path(out) if out is not None else Path("results") / inventory.cohort / "inventory.tsv"
    inventory.write(out)
    write_text(out.with_suffix(".txt"), inventory.summary() + "\n")
    if unusable is not None:
        raise UnusableCohortError(
            f"{unusable}\nThe inventory with every row's reason is in {out} (summary "
            f"{out.with_suffix('.txt')}).",
            inventory,
        ) from unusable
    excluded = inventory.table[inventory.table["status"] == "excluded"]
    if strict and len(excluded):
        first = excluded.iloc[0]
        raise CohortError(
            f"{cohort_file}: strict mode and {len(excluded)} recording(s) excluded, e.g. "
            f"sub-{first['subject']} {first['modality']} {first['path'] or ''}: {first['reason']}. "
            f"See {out}; fix the data or set strict: false to record exclusions and go on."
        )
    problems = [n for n in inventory.notes if n.startswith(PROBLEM)]
    if strict and problems:
        raise CohortError(f"{cohort_file}: strict mode and {problems[0]}")
    return inventory
