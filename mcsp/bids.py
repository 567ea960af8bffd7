"""Cohort discovery: one inventory table of every subject × session × modality × task × run.

``build_inventory`` finds the resting-state BOLD runs, their fMRIPrep outputs and the resting EEG
recordings of a BIDS dataset, reads the labels and sites from ``participants.tsv``, and records
every problem as a row status with a reason instead of skipping it. pybids finds the files: only
``func/`` and ``eeg/`` data files are indexed (no metadata, no database file), and sidecars are
resolved here with the BIDS inheritance rule, which keeps 1,000 subjects well under 30 s. Data
files are never opened: only their size is checked. Nothing is written inside the BIDS folder.
A file outside its own ``sub-<label>/[ses-<label>/]`` folder (a copy such as ``sub-04-bak/``) is
excluded with a reason and never chosen over the real one; label mistakes in participants.tsv or
the cohort's label mappings stop the inventory with a CohortError or ConfigError.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mcsp.exceptions import CohortError, ConfigError
from mcsp.io import atomic_output, write_text

log = logging.getLogger(__name__)

MODALITIES = ("fmri", "eeg")
STATUSES = ("ok", "warning", "excluded", "missing")
USABLE = ("ok", "warning")  # statuses whose recordings go on (QC tables, store, DAG)
HEAD_COLUMNS = [
    "cohort",
    "subject",
    "session",
    "modality",
    "task",
    "run",
    "path",
    "sidecar",
    "derivative",
    "site",
]
TAIL_COLUMNS = ["status", "reason"]
EMPTY_FILE = "empty file (0 bytes) — placeholder?"
NA_VALUES = ["n/a", "N/A", "NaN", "nan", ""]
# Entities fMRIPrep adds to (or drops from) the raw BOLD name of its preprocessed BOLD.
_DERIVATIVE_ONLY = frozenset({"space", "res", "den", "desc", "cohort", "echo"})
_NAMES = {"fmri": "fMRI", "eeg": "EEG"}
_FOLDERS = {"fmri": "func", "eeg": "eeg"}
_SEVERITY = {"warning": 1, "excluded": 2}
_LABEL = re.compile(r"[A-Za-z0-9]+")  # a BIDS label: letters and digits only
_DESCRIPTIONS = {
    "cohort": "Cohort name (config/cohorts/NAME.yaml).",
    "subject": "BIDS subject label, without 'sub-'.",
    "session": "BIDS session label, without 'ses-'; empty when the dataset has no sessions.",
    "modality": "fmri or eeg.",
    "task": "BIDS task label; empty on rows of status missing.",
    "run": "BIDS run label, without 'run-'; empty when absent.",
    "path": "Raw data file (BOLD NIfTI or EEG recording); empty when missing.",
    "sidecar": "Nearest JSON sidecar found by BIDS inheritance; empty when none.",
    "derivative": "fMRIPrep preprocessed BOLD in the cohort's output space; empty when none.",
    "site": "Acquisition site from participants.tsv; 'n/a' when unknown.",
    "status": "ok, warning (usable; see reason), excluded (not usable) or missing.",
    "reason": "Why the status is not ok; problems separated by '; '.",
}


class UnusableCohortError(CohortError):
    """No recording of the cohort is usable; ``inventory`` holds every row and its reason."""

    def __init__(self, message: str, inventory: Inventory) -> None:
        super().__init__(message)
        self.inventory = inventory


@dataclass(frozen=True, eq=False)
class Inventory:
    """The cohort inventory: one row per subject × session × modality × task × run.

    Columns: ``cohort, subject, session, modality, task, run, path, sidecar, derivative, site``,
    one nullable ``Int64`` column per label, then ``status`` and ``reason``. ``notes`` are
    cohort-level warnings (e.g. label values outside a mapping) shown in the summary.
    """

    cohort: str
    table: pd.DataFrame
    bids_root: str = ""
    notes: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        """Names of the label columns (between ``site`` and ``status``)."""
        columns = list(self.table.columns)
        return columns[columns.index("site") + 1 : columns.index("status")]

    def subjects(self, modality: str | None = None, status: str = "ok") -> list[str]:
        """Sorted subjects with at least one row of ``status`` (for ``modality``, if given)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if modality is not None and modality not in MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(MODALITIES)} or None")
        rows = self.table["status"] == status
        if modality is not None:
            rows &= self.table["modality"] == modality
        return sorted(set(self.table.loc[rows, "subject"]))

    def summary(self) -> str:
        """A multi-line summary for a person: subjects, sites, recordings, labels, problems."""
        return _summary(self)

    def write(self, path: str | Path) -> None:
        """Write the table as TSV (labels n/a as ``n/a``) and a JSON sidecar describing it.

        Raises:
            ConfigError: when ``path`` lies inside the BIDS folder (mcsp never writes there).
        """
        path = Path(path)
        if self.bids_root and path.resolve().is_relative_to(Path(self.bids_root).resolve()):
            raise ConfigError(
                f"{path}: refusing to write the inventory inside the BIDS folder "
                f"{self.bids_root}; mcsp never writes into input data. Write it under results/."
            )
        with atomic_output(path) as tmp:
            self.table.to_csv(tmp, sep="\t", index=False, na_rep="n/a", lineterminator="\n")
        columns = {
            c: _DESCRIPTIONS.get(c, f"Class of label {c}; n/a when none.") for c in self.table
        }
        sidecar: dict[str, Any] = {
            "Cohort": self.cohort,
            "BidsRoot": self.bids_root,
            "Columns": columns,
        }
        if self.notes:
            sidecar["Notes"] = list(self.notes)
        write_text(_sidecar_of(path), json.dumps(sidecar, indent=2, ensure_ascii=False) + "\n")


def read_inventory(path: str | Path) -> Inventory:
    """Read an inventory written by :meth:`Inventory.write` (its JSON sidecar is optional)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise CohortError(f"{path}: cannot read the inventory ({err}).") from err
    absent = [c for c in HEAD_COLUMNS + TAIL_COLUMNS if c not in table.columns]
    if absent:
        raise CohortError(
            f"{path}: not an mcsp inventory (columns {', '.join(absent)} missing). "
            "Write it again with `mcsp cohort check`."
        )
    columns = list(table.columns)
    for label in columns[columns.index("site") + 1 : columns.index("status")]:
        table[label] = pd.array(
            [None if v in ("n/a", "") else int(v) for v in table[label]], dtype="Int64"
        )
    meta: dict[str, Any] = {}
    sidecar = _sidecar_of(path)
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text())
    cohort = meta.get("Cohort") or (table["cohort"].iloc[0] if len(table) else "")
    return Inventory(cohort, table, meta.get("BidsRoot", ""), tuple(meta.get("Notes") or ()))


def build_inventory(cohort: Mapping[str, Any]) -> Inventory:
    """Find every resting-state fMRI and EEG recording of a cohort and check it.

    Args:
        cohort: a validated cohort config (defaults filled), see ``workflow/schemas``.

    Returns:
        The inventory; every problem of one subject or recording is a row status and reason.

    Raises:
        CohortError: when the cohort cannot be used as a whole (no BIDS folder, no subjects,
            no usable recording, unreadable participants.tsv or a label column it lacks).
    """
    start = time.perf_counter()
    name = str(cohort["name"])
    root = _check_root(cohort)
    labels = label_specs(cohort)
    site_column = (cohort.get("participants") or {}).get("site_column")
    participants = read_participants(root, labels, site_column)
    notes = mapping_warnings(root / "participants.tsv", participants, labels, name)
    subject_dirs = sorted(  # sub-004-bak/ is no subject: its files are excluded as misplaced
        p.name[4:]
        for p in root.iterdir()
        if p.name.startswith("sub-") and _LABEL.fullmatch(p.name[4:]) and p.is_dir()
    )
    if not subject_dirs:
        listed = sorted(participants or {})
        also = f" (participants.tsv lists {len(listed)}, none with a folder)" if listed else ""
        raise CohortError(
            f"{root}: no subjects found: no sub-<label> folders{also}. Fix: point bids_root "
            "at the dataset root, or fetch the data first (e.g. `datalad get -r`)."
        )
    fmri_tasks = list((cohort.get("fmri") or {}).get("tasks") or [])
    eeg = cohort.get("eeg") or {}
    eeg_tasks = list(eeg.get("tasks") or [])
    extensions = list(eeg.get("extensions") or [".vhdr", ".edf", ".bdf", ".set", ".fif"])
    fmriprep = _fmriprep_context(cohort, root) if fmri_tasks else None

    deriv_root = fmriprep.root if fmriprep and not fmriprep.problem else None
    layout = _layout(root, deriv_root, extensions)
    func = _data_files(layout, "func", "bold", [".nii", ".nii.gz"])
    eeg_files = _data_files(layout, "eeg", "eeg", extensions)
    sidecars = Sidecars(root)
    records: list[dict[str, Any]] = []
    if fmriprep is not None:
        if deriv_root:
            fmriprep.preproc, fmriprep.misplaced = _preproc_bold(
                layout, fmriprep.root, fmriprep.space
            )
        for task in fmri_tasks:
            records += [_fmri_record(f, root, sidecars, fmriprep) for f in func.get(task, [])]
    for task in eeg_tasks:
        records += [_eeg_record(f, root, sidecars) for f in eeg_files.get(task, [])]
    _mark_duplicates(records, [".nii.gz", ".nii", *extensions])
    expected = {"fmri": fmri_tasks, "eeg": eeg_tasks}
    found_tasks = {"fmri": set(func), "eeg": set(eeg_files)}
    records += _missing_records(records, subject_dirs, participants, expected, found_tasks)

    rows = []
    for record in records:
        site, values, warnings = subject_info(record["subject"], participants, labels, site_column)
        if record["modality"] == "eeg" and not record["problems"]:
            _check_positions(record, cohort, site, root)
        rows.append(inventory_row(name, record, site, values, warnings))
    table = pd.DataFrame(rows, columns=HEAD_COLUMNS + list(labels) + TAIL_COLUMNS)
    for label in labels:
        table[label] = table[label].astype("Int64")
    order = table["modality"].map({m: i for i, m in enumerate(MODALITIES)})
    table = (
        table.assign(_order=order)
        .sort_values(["subject", "session", "_order", "task", "run", "path"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    inventory = Inventory(name, table, str(root), tuple(notes))
    if not table["status"].isin(USABLE).any():
        raise UnusableCohortError(
            f"{root}: no subject has a usable fMRI or EEG recording ({len(table)} rows checked). "
            "Most common problems:\n  "
            + "\n  ".join(describe_groups(problem_groups(table), limit=3))
            + "\nFix these (or the cohort file's tasks/extensions), then run `mcsp cohort check`.",
            inventory,
        )
    log.info(
        "cohort %s: %d subjects, %d rows in %.1f s",
        name,
        table["subject"].nunique(),
        len(table),
        time.perf_counter() - start,
    )
    return inventory


# --- whole-cohort checks -------------------------------------------------------------------------


def _check_root(cohort: Mapping[str, Any]) -> Path:
    name = cohort["name"]
    root = Path(os.path.abspath(cohort["bids_root"]))
    where = f"bids_root of cohort '{name}'"
    fix = (
        f"Fix: set bids_root in config/cohorts/{name}.yaml to the folder that holds "
        f"dataset_description.json and the sub-* folders (relative paths start at {Path.cwd()})."
    )
    if not root.exists():
        raise CohortError(f"{root} ({where}) does not exist. {fix}")
    if not root.is_dir():
        raise CohortError(f"{root} ({where}) is not a folder. {fix}")
    if not any(root.iterdir()):
        raise CohortError(
            f"{root} ({where}) is empty. Fix: copy or fetch the BIDS dataset there "
            "(e.g. `datalad get -r`), or point bids_root at the folder that holds it."
        )
    if not (root / "dataset_description.json").exists():
        inner = sorted(p.parent for p in root.glob("*/dataset_description.json"))
        hint = f" Did you mean {inner[0]}?" if inner else ""
        raise CohortError(
            f"{root} ({where}) has no dataset_description.json, so it is not a BIDS dataset "
            f"root.{hint} Fix: point bids_root at the dataset root, or add "
            '{"Name": "...", "BIDSVersion": "1.9.0"} as dataset_description.json.'
        )
    return root


def label_specs(cohort: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, int]]]:
    """{label: (participants.tsv column, {value: class})} of the cohort's labels.

    Raises:
        ConfigError: a label name clashes with an inventory column, or a mapping key is a YAML
            boolean or null (unquoted no/yes, false/true, off/on, ~ never match a TSV value).
    """
    name = cohort["name"]
    specs = {}
    for label, spec in (cohort.get("labels") or {}).items():
        if label in HEAD_COLUMNS + TAIL_COLUMNS:
            raise ConfigError(
                f"cohort '{name}': label name {label!r} clashes with an inventory "
                "column; rename the label in the cohort file."
            )
        column = str(spec["column"])
        odd = [k for k in spec["mapping"] if k is None or isinstance(k, bool)]
        if odd:
            raise ConfigError(
                f"cohort '{name}' (config/cohorts/{name}.yaml): labels.{label}.mapping has "
                f"key(s) {', '.join(map(str, odd))}: YAML reads unquoted no/yes, false/true, "
                f"off/on as booleans (and ~ or null as null), which never match the text in "
                f"participants.tsv column {column}. Fix: quote the keys: 'no': 0, 'yes': 1."
            )
        mapping = {str(k).strip(): int(v) for k, v in spec["mapping"].items()}
        specs[str(label)] = (column, mapping)
    return specs


def read_participants(
    root: Path, labels: Mapping[str, tuple[str, dict[str, int]]], site_column: str | None
) -> dict[str, dict[str, str | None]] | None:
    """participants.tsv as {subject: {column: value or None}}; None when the file is absent.

    A participant_id listed twice (with or without ``sub-``) whose rows differ in a column the
    cohort uses (label columns, site column) is refused; rows that agree in those columns are
    accepted with a logged warning and the first one is used.

    Raises:
        CohortError: the file is not tab-separated or unreadable, lacks a used column, lists a
            participant twice with conflicting values, or a label's mapping matches none of its
            column's values (every subject would be n/a).
    """
    path = root / "participants.tsv"
    if not path.exists():
        return None
    _check_tab_separated(path)
    try:
        df = pd.read_csv(
            path,
            sep="\t",
            dtype=str,
            keep_default_na=False,
            na_values=NA_VALUES,
            skip_blank_lines=False,  # row i is line i + 2 (for messages); blank rows are n/a
        )
    except pd.errors.EmptyDataError:
        return None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise CohortError(
            f"{path}: cannot be read as a tab-separated table ({err}). Fix the file "
            "(one header row, tabs between columns, 'n/a' for missing values)."
        ) from err
    df.columns = [str(c).strip() for c in df.columns]
    used = list(dict.fromkeys([column for column, _ in labels.values()]))
    if site_column:
        used = list(dict.fromkeys([*used, site_column]))
    absent = sorted({"participant_id", *used} - set(df.columns))
    if absent:
        raise CohortError(
            f"{path}: column(s) {', '.join(absent)} not found (columns: {', '.join(df.columns)}). "
            "Fix the cohort file's participants.site_column / labels.*.column, or the TSV header."
        )
    participants: dict[str, dict[str, str | None]] = {}
    lines: dict[str, list[int]] = defaultdict(list)
    conflicts: dict[str, list[str]] = {}
    for line, record in enumerate(df.to_dict("records"), start=2):
        pid = record.pop("participant_id")
        if pd.isna(pid):
            continue
        subject = str(pid).strip().removeprefix("sub-")
        values = {k: None if pd.isna(v) else str(v).strip() or None for k, v in record.items()}
        lines[subject].append(line)
        first = participants.setdefault(subject, values)
        for column in used:
            if values[column] != first[column]:
                conflicts.setdefault(subject, []).append(
                    f"{column} {_text(first[column])} vs {_text(values[column])}"
                )
    duplicated = {s: n for s, n in lines.items() if len(n) > 1}
    if conflicts:
        shown = [
            f"sub-{s} (lines {', '.join(map(str, lines[s]))}: {', '.join(dict.fromkeys(c))})"
            for s, c in conflicts.items()
        ]
        raise CohortError(
            f"{path}: participant_id listed more than once with different values: "
            f"{_shorten(shown, 5)}. Fix: keep one row per participant (delete or merge the "
            "others; line 1 is the header)."
        )
    if duplicated:
        shown = [f"sub-{s} (lines {', '.join(map(str, n))})" for s, n in duplicated.items()]
        columns = f" in the columns used ({', '.join(used)})" if used else ""
        log.warning(
            "%s: participant_id listed more than once, with the same values%s: %s; the first row "
            "is used. Delete the extra rows.",
            path,
            columns,
            _shorten(shown, 5),
        )
    _check_mappings(path, participants.values(), labels)
    return participants


def _check_tab_separated(path: Path) -> None:
    """Refuse a participants.tsv whose header line has commas or semicolons and no tab."""
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            header = stream.readline()
    except OSError:
        return  # read_csv reports it
    for sep, name in ((",", "commas"), (";", "semicolons")):
        if "\t" not in header and sep in header:
            raise CohortError(
                f"{path}: not tab-separated: its header line has {name} and no tabs "
                f"({header.strip()[:80]!r}), so its columns cannot be found. Fix: "
                "save it as tab-separated values (BIDS .tsv files use tabs, not CSV), with "
                "'n/a' for missing values."
            )


def _check_mappings(
    path: Path,
    rows: Iterable[Mapping[str, str | None]],
    labels: Mapping[str, tuple[str, dict[str, int]]],
) -> None:
    """Refuse a label whose mapping matches none of its column's non-missing values.

    Raises:
        CohortError: naming ``path``, the label, the column's values and the mapping's keys.
    """
    table = list(rows)
    for label, (column, mapping) in labels.items():
        values = sorted({row[column] for row in table if row.get(column) is not None})
        if values and all(lookup_label(mapping, value) is None for value in values):
            raise CohortError(
                f"{path}: no value of column {column} is in the mapping of label {label}, so "
                f"every subject would have {label} n/a. Values in {column}: "
                f"{_shorten([_text(v) for v in values], 12)}; mapping keys: "
                f"{_shorten([_text(k) for k in mapping], 12)}. Fix labels.{label}.mapping in "
                "the cohort file to use the column's values (exact text, case-sensitive) or "
                f"labels.{label}.column."
            )


def mapping_warnings(
    path: Path,
    participants: Mapping[str, Mapping[str, str | None]] | None,
    labels: Mapping[str, tuple[str, dict[str, int]]],
    cohort: str,
) -> list[str]:
    """Warnings (also logged) for label columns holding values their mapping lacks.

    ``_check_mappings`` refuses a mapping that matches nothing; this names the values a partial
    mapping leaves out and how many subjects they make n/a.
    """
    notes = []
    for label, (column, mapping) in labels.items():
        counts: dict[str, int] = defaultdict(int)
        for row in (participants or {}).values():
            value = row.get(column)
            if value is not None and lookup_label(mapping, value) is None:
                counts[value] += 1
        if not counts:
            continue
        shown = [
            f"{_text(v)} ({k} subject{'s' if k > 1 else ''})" for v, k in sorted(counts.items())
        ]
        n = sum(counts.values())
        note = (
            f"{path}: column {column} has value(s) not in labels.{label}.mapping: "
            f"{_shorten(shown, 8)}; {n} subject{'s get' if n > 1 else ' gets'} {label} n/a. "
            f"Fix: add them to labels.{label}.mapping in config/cohorts/{cohort}.yaml "
            f"(mapping keys: {_shorten([_text(k) for k in mapping], 8)}), unless they are meant "
            "to be n/a."
        )
        log.warning("%s", note)
        notes.append(note)
    return notes


def _text(value: str | None) -> str:
    return "n/a" if value is None else repr(value)


def _shorten(items: list[str], limit: int) -> str:
    """The first ``limit`` of ``items`` joined by ', ', with the count when there are more."""
    more = f", … ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


@dataclass
class _Fmriprep:
    """Where the fMRIPrep outputs are and what they hold."""

    root: Path
    problem: str | None  # why the folder cannot be indexed
    precomputed: bool
    space: str
    preproc: dict[tuple, list[Path]] = field(default_factory=dict)
    misplaced: dict[tuple, list[str]] = field(default_factory=dict)  # why copies were ignored


def _fmriprep_context(cohort: Mapping[str, Any], root: Path) -> _Fmriprep:
    config = cohort.get("fmriprep") or {}
    folder = config.get("derivatives") or root / "derivatives" / "fmriprep"
    folder = Path(os.path.abspath(folder))
    precomputed = config.get("runtime", "precomputed") == "precomputed"
    space = config.get("output_space", "MNI152NLin2009cAsym")
    return _Fmriprep(folder, _derivatives_problem(folder, root), precomputed, space)


def _derivatives_problem(path: Path, bids_root: Path | None = None) -> str | None:
    """Why the fMRIPrep folder cannot be indexed by pybids, or None.

    The fix offered is always to point ``fmriprep.derivatives`` at fMRIPrep's own output folder,
    never to write into it (mcsp never writes into input data).
    """
    default = (bids_root / "derivatives" / "fmriprep") if bids_root else None
    where = (
        "set fmriprep.derivatives in the cohort file to fMRIPrep's output folder, the one "
        "holding fMRIPrep's own dataset_description.json and the sub-*/[ses-*/]func/ outputs"
        + (f" (by default {default})" if default else "")
    )
    if not path.is_dir():
        return (
            f"fMRIPrep derivatives folder {path} does not exist: {where}, or set "
            "fmriprep.runtime to apptainer/docker to run fMRIPrep"
        )
    description = path / "dataset_description.json"
    if not description.is_file():
        inner = sorted(p.parent for p in path.glob("*/dataset_description.json"))
        hint = f"; did you mean {inner[0]}?" if inner else ""
        return (
            f"fMRIPrep derivatives folder {path} has no dataset_description.json, so it is not "
            f"the folder fMRIPrep wrote: {where}{hint} (mcsp never writes into input data)"
        )
    try:
        content = json.loads(description.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (
            f"{description} is empty or not valid JSON, which fMRIPrep never writes: {where}, "
            "or re-copy fMRIPrep's output"
        )
    if not isinstance(content, dict):
        return f"{description} is not a JSON object, so not fMRIPrep's: {where}"
    kind = content.get("DatasetType", "derivative")
    if kind != "derivative":
        return (
            f"{description} says DatasetType {kind!r}, not 'derivative': is this the raw data? "
            f"{where[0].upper()}{where[1:]}"
        )
    generated = content.get("GeneratedBy")
    names = (
        [g.get("Name") for g in generated if isinstance(g, dict)]
        if isinstance(generated, list)
        else []
    )
    if not any(names) and not (content.get("PipelineDescription") or {}).get("Name"):
        return (
            f"{description} has no GeneratedBy Name (pybids needs it; fMRIPrep writes "
            f'GeneratedBy [{{"Name": "fMRIPrep", …}}]), so it is not fMRIPrep\'s: {where}'
        )
    return None


def _layout(root: Path, derivatives: Path | None, extensions: Iterable[str]) -> Any:
    """A pybids layout of the func/ and eeg/ data files only (in memory, no metadata)."""
    from bids import BIDSLayout
    from bids.layout import BIDSLayoutIndexer

    eeg_keep = "".join(rf"(?<!_eeg{re.escape(ext)})" for ext in extensions)
    ignore = [
        re.compile(r"^/(code|models|sourcedata|stimuli|logs?)(/|$)"),
        re.compile(r"/\."),
        # below sub-*/[ses-*/] keep only func/ and eeg/ (no anat, fmap, figures, …)
        re.compile(r"^/sub-[^/]+/(?:ses-[^/]+/)?(?!(?:func|eeg|ses-[^/]+)$)[^/]+$"),
        re.compile(r"/func/[^/]+(?<!_bold\.nii)(?<!_bold\.nii\.gz)$"),
        re.compile(rf"/eeg/[^/]+{eeg_keep}$"),
    ]
    indexer = BIDSLayoutIndexer(validate=False, index_metadata=False, ignore=ignore)
    try:
        return BIDSLayout(
            root,
            validate=False,
            derivatives=[str(derivatives)] if derivatives else False,
            indexer=indexer,
        )
    except Exception as err:  # pybids raises many kinds; one clear message for all of them
        raise CohortError(f"{root}: pybids cannot index this dataset ({err}).") from err


# --- one recording -------------------------------------------------------------------------------


def parse_name(name: str) -> tuple[dict[str, str], str, str]:
    """BIDS file name -> (entities, suffix, extension), e.g. {'sub': '01'}, 'bold', '.nii.gz'."""
    stem, dot, ext = name.partition(".")
    parts = stem.split("_")
    entities = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    return entities, parts[-1], dot + ext


def file_problem(path: Path) -> str | None:
    """Why a data file cannot be used, judged from its size only; None when it can."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if path.is_symlink():
            return "broken symlink (annexed file not fetched? try `datalad get`)"
        return "file not found"
    except OSError as err:
        return f"cannot read the file ({err.strerror})"
    return EMPTY_FILE if size == 0 else None


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)


class Sidecars:
    """Resolves and reads JSON sidecars by the BIDS inheritance rule, with caches."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listings: dict[Path, list[str]] = {}
        self._loaded: dict[Path, dict[str, Any] | None] = {}

    def _jsons(self, folder: Path) -> list[str]:
        if folder not in self._listings:
            try:
                self._listings[folder] = sorted(
                    n for n in os.listdir(folder) if n.endswith(".json")
                )
            except OSError:
                self._listings[folder] = []
        return self._listings[folder]

    def load(self, path: Path) -> dict[str, Any] | None:
        """The JSON object in ``path``; None when empty, unreadable or not a JSON object."""
        if path not in self._loaded:
            try:
                content = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                content = None
            self._loaded[path] = content if isinstance(content, dict) else None
        return self._loaded[path]

    def resolve(self, data: Path, suffix: str) -> tuple[Path | None, dict[str, Any], list[str]]:
        """(nearest valid sidecar, merged metadata, invalid sidecars) for a data file."""
        entities = parse_name(data.name)[0]
        folders = [self.root]
        for part in data.parent.relative_to(self.root).parts:
            folders.append(folders[-1] / part)
        candidates = []
        for depth, folder in enumerate(folders):
            for name in self._jsons(folder):
                ents, sfx, ext = parse_name(name)
                if sfx == suffix and ext == ".json" and ents.items() <= entities.items():
                    candidates.append((depth, len(ents), folder / name))
        nearest, metadata, invalid = None, {}, []
        for _, _, path in sorted(candidates):
            content = self.load(path)
            if content is None:
                invalid.append(path)
            else:
                nearest = path
                metadata.update(content)
        return nearest, metadata, invalid


def _record(path: Path, modality: str, root: Path) -> dict[str, Any]:
    """A recording's row fields; excluded (and ``misplaced``) when outside its own folder."""
    entities = parse_name(path.name)[0]
    where = _misplaced(path, root, _FOLDERS[modality], "the BIDS folder")
    return {
        "subject": entities.get("sub", ""),
        "session": entities.get("ses", ""),
        "modality": modality,
        "task": entities.get("task", ""),
        "run": entities.get("run", ""),
        "path": str(path),
        "sidecar": "",
        "derivative": "",
        "problems": [("excluded", where)] if where else [],  # (status, reason)
        "misplaced": bool(where),
    }


def _invalid_sidecars(record: dict[str, Any], invalid: list[Path], root: Path, status: str) -> None:
    for path in invalid:
        reason = f"sidecar {_rel(path, root)} is empty or not valid JSON (ignored)"
        record["problems"].append((status, reason))


def _data_files(
    layout: Any, datatype: str, suffix: str, extensions: list[str]
) -> dict[str, list[Path]]:
    """Raw data files of one datatype, by task (all tasks: unused ones make a helpful hint)."""
    by_task: dict[str, list[Path]] = defaultdict(list)
    for f in layout.get(
        scope="raw", datatype=datatype, suffix=suffix, extension=extensions, return_type="filename"
    ):
        path = Path(f)
        by_task[parse_name(path.name)[0].get("task", "")].append(path)
    return {task: sorted(paths) for task, paths in by_task.items()}


def _preproc_bold(
    layout: Any, root: Path, space: str
) -> tuple[dict[tuple, list[Path]], dict[tuple, list[str]]]:
    """fMRIPrep preprocessed BOLD in ``space`` keyed by the raw entities they come from, and why
    the files outside their own sub-/ses- folder under ``root`` (copies, backups) were ignored."""
    found: dict[tuple, list[Path]] = defaultdict(list)
    misplaced: dict[tuple, list[str]] = defaultdict(list)
    for f in layout.get(
        scope="derivatives",
        suffix="bold",
        desc="preproc",
        space=space,
        extension=[".nii.gz", ".nii"],
        return_type="filename",
    ):
        path = Path(f)
        key = raw_key(parse_name(path.name)[0])
        if problem := _misplaced(path, root, "func", "the fMRIPrep folder"):
            misplaced[key].append(problem)
        else:
            found[key].append(path)
    for paths in found.values():  # prefer the file without a res-/den- entity, then by name
        paths.sort(key=lambda p: ("_res-" in p.name or "_den-" in p.name, p.name))
    return found, misplaced


def _misplaced(path: Path, root: Path, datatype: str, where: str) -> str | None:
    """Why a data file is not in ``sub-<label>/[ses-<label>/]<datatype>/`` of its own name's
    entities below ``root`` (a copy or backup beside the real subject?), or None when it is."""
    entities = parse_name(path.name)[0]
    fix = f"a copy or backup? move it out of {where}"
    for key, what in (("sub", "subject"), ("ses", "session")):
        value = entities.get(key, "" if key == "sub" else None)
        if value is not None and not _LABEL.fullmatch(value):
            return (
                f"file {path.name} has {what} label {value!r} (BIDS labels are letters and "
                f"digits only): {fix}"
            )
    try:
        actual = list(path.parent.relative_to(root).parts)
    except ValueError:
        try:
            actual = list(path.parent.resolve().relative_to(root.resolve()).parts)
        except ValueError:  # not below root: nothing to compare with
            return None
    session = [f"ses-{entities['ses']}"] if "ses" in entities else []
    expected = [f"sub-{entities['sub']}", *session, datatype]
    if actual == expected:
        return None
    first = next(
        (i for i, (a, e) in enumerate(zip(actual, expected, strict=False)) if a != e),
        min(len(actual), len(expected)),
    )
    folder = "/".join(actual[: first + 1]) + "/"
    instead = "/".join(expected[: first + 1]) + "/"
    return f"file {path.name} lies in folder {folder}, not {instead}: {fix}"


def raw_key(entities: Mapping[str, str]) -> tuple:
    """Entities shared by a raw run and its fMRIPrep outputs (space, res, desc… dropped)."""
    return tuple(sorted((k, v) for k, v in entities.items() if k not in _DERIVATIVE_ONLY))


def _fmri_record(path: Path, root: Path, sidecars: Sidecars, fmriprep: _Fmriprep) -> dict[str, Any]:
    record = _record(path, "fmri", root)
    if record["misplaced"]:
        return record
    problems = record["problems"]
    key = raw_key(parse_name(path.name)[0])
    found = fmriprep.preproc.get(key)
    ignored = "excluded" if fmriprep.precomputed and not found else "warning"
    for reason in fmriprep.misplaced.get(key, []):
        problems.append((ignored, f"fMRIPrep BOLD ignored: {reason}"))
    if problem := file_problem(path):
        # With precomputed derivatives the raw BOLD is not read (DataLad trees often lack it).
        usable = fmriprep.precomputed and found and not file_problem(found[0])
        problems.append(("warning" if usable else "excluded", f"raw BOLD: {problem}"))
    nearest, metadata, invalid = sidecars.resolve(path, "bold")
    record["sidecar"] = str(nearest or "")
    _invalid_sidecars(record, invalid, root, "warning")
    repetition_time = metadata.get("RepetitionTime")
    if found:
        derivative = found[0]
        record["derivative"] = str(derivative)
        if problem := file_problem(derivative):
            problems.append(("excluded", f"fMRIPrep BOLD {derivative.name}: {problem}"))
        if not _positive(repetition_time):
            json_path = derivative.parent / (derivative.name.partition(".")[0] + ".json")
            derived = (sidecars.load(json_path) or {}).get("RepetitionTime")
            repetition_time = repetition_time if derived is None else derived
    elif fmriprep.precomputed:
        if fmriprep.problem:
            problems.append(("excluded", fmriprep.problem))
        else:
            rel = path.parent.relative_to(root)
            stem = path.name.partition(".")[0].removesuffix("_bold")
            name = f"{stem}_space-{fmriprep.space}_desc-preproc_bold.nii.gz"
            expected = fmriprep.root / rel / name
            problems.append(
                (
                    "excluded",
                    f"no fMRIPrep preprocessed BOLD: expected {expected} "
                    "(fmriprep.runtime is precomputed)",
                )
            )
    if not _positive(repetition_time):
        what = "no" if repetition_time is None else f"invalid ({repetition_time!r})"
        problems.append(
            (
                "excluded",
                f"{what} RepetitionTime in the _bold.json sidecars (BIDS inheritance) "
                "or the fMRIPrep sidecar",
            )
        )
    return record


def _eeg_record(path: Path, root: Path, sidecars: Sidecars) -> dict[str, Any]:
    record = _record(path, "eeg", root)
    if record["misplaced"]:
        return record
    problems = record["problems"]
    if problem := file_problem(path):
        problems.append(("excluded", problem))
    elif path.suffix == ".vhdr":
        data = path.with_suffix(".eeg")
        if problem := file_problem(data):
            problems.append(("excluded", f"BrainVision data {data.name}: {problem}"))
    nearest, metadata, invalid = sidecars.resolve(path, "eeg")
    record["sidecar"] = str(nearest or "")
    _invalid_sidecars(record, invalid, root, "warning" if nearest else "excluded")
    if nearest is None and not invalid:
        problems.append(("excluded", "no _eeg.json sidecar (BIDS requires one)"))
    elif nearest is not None and not _positive(metadata.get("SamplingFrequency")):
        problems.append(("excluded", f"sidecar {_rel(nearest, root)} has no SamplingFrequency"))
    return record


def cohort_montage(cohort: Mapping[str, Any], site: str | None) -> str | None:
    """The cohort's MNE montage for a recording of ``site`` (cohort file ``eeg.montage``)."""
    montage = (cohort.get("eeg") or {}).get("montage")
    if isinstance(montage, Mapping):
        return montage.get(site) if site else None
    return montage


def _check_positions(
    record: dict[str, Any], cohort: Mapping[str, Any], site: str, root: Path
) -> None:
    """Before any job: the cohort's montage must position at least half of a recording's EEG
    channels (names from its channels.tsv; mcsp.eeg.montage_match, which cleaning uses too), or
    the recording is excluded with the unmatched names; fewer stray ones are a warning."""
    montage = cohort_montage(cohort, site)
    path = Path(record["path"])
    channels = path.with_name(re.sub(r"_eeg\.[^.]+$", "_channels.tsv", path.name))
    if not montage or not channels.is_file():
        return
    table = pd.read_csv(channels, sep="\t", dtype=str, keep_default_na=False)
    if "name" not in table:
        return
    kinds = table["type"].str.upper() if "type" in table else pd.Series("EEG", index=table.index)
    names = table.loc[kinds == "EEG", "name"].tolist()
    if not names:
        return
    from mcsp.eeg import montage_match

    aliases = (cohort.get("eeg") or {}).get("channel_aliases")
    matched, unmatched = montage_match(names, montage, aliases)
    if not unmatched:
        return
    shown = ", ".join(unmatched[:12]) + (f" … ({len(unmatched)})" if len(unmatched) > 12 else "")
    fix = (
        f"map them to {montage} names in the cohort file's eeg.channel_aliases, or set eeg.montage "
        "to the cap's MNE montage"
    )
    if len(matched) < max(4, len(names) / 2):
        reason = (
            f"montage {montage} positions only {len(matched)} of {len(names)} EEG channels "
            f"({channels.name}); no position for {shown}. Fix: {fix}"
        )
        record["problems"].append(("excluded", reason))
    else:
        reason = f"montage {montage}: no position for {shown} (dropped when cleaning). Fix: {fix}"
        record["problems"].append(("warning", reason))


def _mark_duplicates(records: list[dict[str, Any]], extensions: list[str]) -> None:
    """Exclude all but one file of a subject/session/modality/task/run (other format, acq-, …).

    The kept file is the one whose extension comes first in ``extensions``, then by path.
    Misplaced files (copies outside their own sub-/ses- folder) are already excluded and never
    compete, so a backup folder such as ``sub-004-bak/`` cannot win over ``sub-004/``.
    """

    def rank(record: dict[str, Any]) -> tuple[int, str]:
        ext = parse_name(Path(record["path"]).name)[2]
        return (extensions.index(ext) if ext in extensions else len(extensions), record["path"])

    first: dict[tuple, str] = {}
    for record in sorted((r for r in records if not r.get("misplaced")), key=rank):
        key = tuple(record[k] for k in ("subject", "session", "modality", "task", "run"))
        if key in first:
            reason = f"duplicate of {Path(first[key]).name} (same subject, session, task and run)"
            record["problems"].append(("excluded", reason))
        else:
            first[key] = record["path"]


def _missing_records(
    records: list[dict[str, Any]],
    subject_dirs: list[str],
    participants: Mapping[str, Any] | None,
    expected: Mapping[str, list[str]],
    found_tasks: Mapping[str, set[str]],
) -> list[dict[str, Any]]:
    """One status-missing row per subject/session and expected modality without a recording."""
    have: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        have[(record["subject"], record["session"])].add(record["modality"])
    for subject in subject_dirs:
        if not any(key[0] == subject for key in have):
            have[(subject, "")] = set()
    reasons = {}
    for modality, tasks in expected.items():
        reasons[modality] = f"no {_NAMES[modality]} recording for task(s) {', '.join(tasks)}"
        others = found_tasks[modality] - set(tasks)
        if others and not found_tasks[modality] & set(tasks):
            reasons[modality] += (
                f" (this dataset has task(s) {', '.join(sorted(others))}: "
                f"set {modality}.tasks in the cohort file?)"
            )
    missing = []
    for (subject, session), modalities in have.items():
        for modality, tasks in expected.items():
            if tasks and modality not in modalities:
                missing.append((subject, session, modality, reasons[modality]))
    for subject in sorted(set(participants or {}) - set(subject_dirs)):
        for modality, tasks in expected.items():
            if tasks:
                reason = f"listed in participants.tsv but has no folder sub-{subject}/"
                missing.append((subject, "", modality, reason))
    return [
        {
            "subject": subject,
            "session": session,
            "modality": modality,
            "task": "",
            "run": "",
            "path": "",
            "sidecar": "",
            "derivative": "",
            "problems": [("missing", reason)],
        }
        for subject, session, modality, reason in missing
    ]


# --- labels, site, status ------------------------------------------------------------------------


def lookup_label(mapping: Mapping[str, int], value: str) -> int | None:
    """Class of ``value``; keys compare as strings, then as numbers (YAML 1 matches '1.0')."""
    if value in mapping:
        return mapping[value]
    try:
        number = float(value)
    except ValueError:
        return None
    for key, cls in mapping.items():
        try:
            if float(key) == number:
                return cls
        except ValueError:
            continue
    return None


def subject_info(
    subject: str,
    participants: Mapping[str, Mapping[str, str | None]] | None,
    labels: Mapping[str, tuple[str, dict[str, int]]],
    site_column: str | None,
) -> tuple[str, dict[str, int | None], list[str]]:
    """(site, label classes, subject-level warnings) of one subject."""
    values: dict[str, int | None] = dict.fromkeys(labels)
    row = (participants or {}).get(subject)
    if row is None:
        needed = (("no labels", labels), ("site unknown", site_column))
        lacks = ", ".join(what for what, needs in needed if needs)
        warning = (
            "not listed in participants.tsv" if participants is not None else "no participants.tsv"
        )
        site = "n/a" if site_column else "1"
        return site, values, [f"{warning} ({lacks})" if lacks else warning]
    warnings = []
    causes: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for label, (column, mapping) in labels.items():
        raw = row.get(column)
        values[label] = None if raw is None else lookup_label(mapping, raw)
        if values[label] is None:
            causes[(column, raw)].append(label)
    if labels and all(v is None for v in values.values()):
        text = [
            f"{column} is n/a"
            if raw is None
            else f"{column} {raw!r} not in the mapping of {'/'.join(names)}"
            for (column, raw), names in causes.items()
        ]
        warnings.append(
            f"no label ({', '.join(text)}): usable for self-supervised pretraining only"
        )
    site = "1"
    if site_column:
        site = row.get(site_column) or "n/a"
        if site == "n/a":
            warnings.append(f"site missing ({site_column} is n/a in participants.tsv)")
    return site, values, warnings


def inventory_row(
    cohort: str,
    record: dict[str, Any],
    site: str,
    values: Mapping[str, int | None],
    warnings: list[str],
) -> dict[str, Any]:
    problems = list(record["problems"]) + [("warning", w) for w in warnings]
    statuses = {status for status, _ in problems}
    status = "missing" if "missing" in statuses else max(statuses, key=_SEVERITY.get, default="ok")
    problems.sort(key=lambda p: -_SEVERITY.get(p[0], 3))  # missing/excluded reasons first
    row = {k: record[k] for k in HEAD_COLUMNS[1:-1]}
    row.update(cohort=cohort, site=site, **values, status=status)
    row["reason"] = "; ".join(dict.fromkeys(reason for _, reason in problems))
    return row


# --- summary -------------------------------------------------------------------------------------


def problem_groups(table: pd.DataFrame) -> list[tuple[str, list[str], int]]:
    """(reason with entity labels generalised, subjects, rows), most subjects first."""
    subjects: dict[str, set[str]] = defaultdict(set)
    rows: dict[str, int] = defaultdict(int)
    for subject, reason in zip(table["subject"], table["reason"], strict=True):
        for part in filter(None, reason.split("; ")):
            generic = re.sub(r"(?<![A-Za-z0-9])(sub|ses|run|acq)-[A-Za-z0-9]+", r"\1-*", part)
            subjects[generic].add(subject)
            rows[generic] += 1
    groups = [(reason, sorted(subs), rows[reason]) for reason, subs in subjects.items()]
    return sorted(groups, key=lambda g: (-len(g[1]), g[0]))


def describe_groups(groups: list[tuple[str, list[str], int]], limit: int) -> list[str]:
    lines = []
    for reason, subjects, n_rows in groups[:limit]:
        shown = ", ".join(f"sub-{s}" for s in subjects[:5])
        more = f" … and {len(subjects) - 5} more" if len(subjects) > 5 else ""
        n_subjects = f"{len(subjects)} subject{'s' if len(subjects) != 1 else ''}"
        lines.append(f"{reason} — {n_subjects}, {n_rows} row(s): {shown}{more}")
    if len(groups) > limit:
        lines.append(f"… and {len(groups) - limit} more kinds of problem (see the reason column)")
    return lines


def _summary(inventory: Inventory) -> str:
    table = inventory.table
    per_subject = table.drop_duplicates("subject")
    sites = per_subject["site"].value_counts().sort_index()
    by_site = ", ".join(f"{site}: {n}" for site, n in sites.items())
    lines = [
        f"Cohort {inventory.cohort}"
        + (f" — BIDS root {inventory.bids_root}" if inventory.bids_root else ""),
        f"Subjects: {len(per_subject)} (by site: {by_site})",
    ]
    usable = table[table["status"].isin(USABLE)]
    with_mod = {m: set(usable.loc[usable["modality"] == m, "subject"]) for m in MODALITIES}
    lines.append(
        f"Usable subjects (status ok or warning): fMRI {len(with_mod['fmri'])}, "
        f"EEG {len(with_mod['eeg'])}, both {len(with_mod['fmri'] & with_mod['eeg'])}, "
        f"any {usable['subject'].nunique()}"
    )
    lines.append("Recordings:  " + "".join(f"{s:>10}" for s in STATUSES))
    for modality in MODALITIES:
        counts = table.loc[table["modality"] == modality, "status"].value_counts()
        lines.append(
            f"  {_NAMES[modality]:<10} " + "".join(f"{counts.get(s, 0):>10}" for s in STATUSES)
        )
    if inventory.labels:
        subjects = usable.drop_duplicates("subject")
        lines.append(f"Labels (per usable subject, n={len(subjects)}):")
        for label in inventory.labels:
            counts = subjects[label].value_counts().sort_index()
            parts = [f"class {int(c)}: {n}" for c, n in counts.items()]
            parts.append(f"n/a: {int(subjects[label].isna().sum())}")
            lines.append(f"  {label}: " + ", ".join(parts))
    if inventory.notes:
        lines.append(f"Warnings ({len(inventory.notes)}):")
        lines += [f"  {note}" for note in inventory.notes]
    groups = problem_groups(table)
    if groups:
        lines.append(f"Problems ({len(groups)} kinds; reason — subjects, rows):")
        lines += ["  " + line for line in describe_groups(groups, limit=12)]
    else:
        lines.append("Problems: none")
    return "\n".join(lines)


def _sidecar_of(path: Path) -> Path:
    """``inventory.tsv`` -> ``inventory.json`` (any other name gets ``.json`` appended)."""
    return path.with_suffix(".json") if path.suffix == ".tsv" else Path(f"{path}.json")


def output_stem(row: Mapping[str, Any]) -> str:
    """Relative output stem of an inventory row: ``sub-01/ses-1/func/sub-01_ses-1_task-rest``.

    Built from the raw file's name (or the fMRIPrep derivative's when the raw one is absent):
    its entities without those fMRIPrep adds, under ``sub-<label>/[ses-<label>/]<func|eeg>/``.
    """
    name = Path(str(row.get("path") or row.get("derivative") or "")).name
    if not name:
        raise CohortError(f"inventory row of sub-{row.get('subject')} names no file.")
    entities = parse_name(name)[0]
    stem = "_".join(f"{k}-{v}" for k, v in entities.items() if k not in _DERIVATIVE_ONLY)
    folder = "func" if row["modality"] == "fmri" else "eeg"
    session = str(row.get("session") or "")
    parts = [f"sub-{row['subject']}", *([f"ses-{session}"] if session else []), folder, stem]
    return "/".join(parts)
