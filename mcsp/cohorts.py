"""Cohorts of every format into one inventory: the dispatch by ``format`` above the sources
(``mcsp.bids`` discovers BIDS recordings, ``mcsp.imports`` reads ROI time series that arrive
parcellated), so that neither imports the other. ``mcsp cohort check`` and the workflow's
inventory rule call :func:`check_cohort`."""

from __future__ import annotations

from pathlib import Path

from mcsp.bids import Inventory, UnusableCohortError, build_inventory
from mcsp.exceptions import CohortError, ConfigError
from mcsp.io import write_text


def build_cohort_inventory(cohort: dict) -> Inventory:
    """The inventory of a validated cohort of format ``bids``, ``abide_pcp`` or ``xcpd``."""
    if cohort["format"] == "bids":
        return build_inventory(cohort)
    from mcsp.imports import build_imported_inventory

    return build_imported_inventory(cohort)


def check_cohort(
    cohort_file: str | Path, out: str | Path | None = None, *, strict: bool = False
) -> Inventory:
    """Load a cohort file, build its inventory, write the TSV and a ``.txt`` summary beside it.

    ``out`` defaults to ``results/NAME/inventory.tsv`` (relative to the working directory).
    With ``strict``, any excluded recording raises CohortError once the table is written. A
    cohort with no usable recording gets its table and summary written too (every row with its
    reason), then raises ``UnusableCohortError``.
    """
    from mcsp.config import load_cohort

    cohort = load_cohort(cohort_file)
    if cohort["format"] == "synthetic":
        raise ConfigError(
            f"{cohort_file}: format synthetic has no input folder to inventory; its inventory is "
            "written with its contract files (`mcsp cohort synth FILE --out results/NAME`)."
        )
    unusable: UnusableCohortError | None = None
    try:
        inventory = build_cohort_inventory(cohort)
    except UnusableCohortError as err:
        unusable, inventory = err, err.inventory
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
    return inventory
