"""Import ready-made ROI time series (ABIDE Preprocessed ``.1D``, XCP-D ``*_timeseries.tsv``).

Two steps, as for BIDS cohorts: ``build_imported_inventory`` lists every time-series file of a
cohort (one inventory row each, labels and site from the ABIDE phenotype CSV or the BIDS
``participants.tsv``), reading each file once to record its problems as row statuses; then
``import_timeseries`` writes each usable file in mcsp's time-series contract (``fmri.py``:
``sub-<l>/[ses-<s>/]func/<prefix>_atlas-<atlas>_timeseries.tsv`` + JSON sidecar) and returns the
fMRI QC table (``mcsp.fmri.QC_COLUMNS``). Input folders are only read.

Formats
    ``abide_pcp``: ``<SITE>_<7-digit SUB_ID>_rois_<atlas>.1D[.gz]``, one ``#`` header line of ROI
    labels (``#10``… written as ``10``…), time × ROI. Files are matched to the phenotype CSV on
    ``SUB_ID``; a file whose subject has no phenotype row is excluded. Task ``rest``, no session
    or run. ``mean_fd`` comes from the phenotype's ``func_mean_fd``.
    ``xcpd``: ``sub-<l>/[ses-<s>/]func/<source>_space-<sp>_(seg|atlas)-<atlas>[_stat-mean]_
    timeseries.tsv`` (0.7+ writes ``seg-``, 0.10+ ``atlas-``; older ``_atlas-<a>_timeseries``),
    header = ROI names, ``n/a`` for parcels below XCP-D's coverage threshold. Labels come from
    ``<bids_root>/participants.tsv`` exactly as for BIDS cohorts (a subject it lacks is a warning,
    as there). Volumes flagged in ``<source>_outliers.tsv`` are dropped if XCP-D left them in
    (interpolated output); censored output is taken as is. ``mean_fd`` is the mean
    ``framewise_displacement`` of ``<source>_motion.tsv``, else NaN.

Constant-ROI policy (the config's ``fmri.max_constant_roi_fraction``, default 0.1, as for BIDS
runs: ``mcsp.fmri.constant_roi_reason`` for both; the cohort's ``timeseries.
max_constant_roi_fraction``, when not null, overrides it for that cohort)
    A constant ROI column (zero variance; all zero or all ``n/a``, i.e. no coverage) is kept in
    the contract (``n/a`` written as 0; standardising leaves zeros and ``functional_connectivity``
    gives such ROIs FC 0) and listed in the QC ``zero_variance_rois`` and the sidecar's
    ``ZeroVarianceROIs``; all-zero or all-``n/a`` columns are also listed as ``empty_rois``. A run
    with more than the limit's share of constant ROIs is excluded. ABIDE PCP Harvard-Oxford (111
    ROIs, 1,102 files), constant ROIs per file (all of them all-zero): 0 in 824 files, 1 in 234,
    2 in 19, 3 in 5, 4 in 8, 5 in 3, 7 in 4, 9 in 2, 20, 21 and 58 in one file each. The default
    0.1 (at most 11 of 111) excludes those last three (SUB_ID 50209, 51469, 51478).

Repetition time
    ``timeseries.repetition_time``: a number (every file) or ``{site: TR}``. Otherwise XCP-D's TR
    is read from the time series' JSON, else the denoised BOLD JSON beside it, else the raw BIDS
    ``_bold.json``. ABIDE ``.1D`` files do not record it: ``ABIDE_SITE_TR`` holds the ABIDE I
    sites' TRs on which every public table found agrees (the official per-site scan-parameter
    pages were not reachable here). Those tables disagree for LEUVEN_1 and LEUVEN_2 (1.652 to
    1.667 s) and SBL (2.2 or 2.5 s), so these sites (94 subjects) get ``RepetitionTime: null`` and
    status ``warning`` until their TR is set in the cohort file (``repetition_time: {SBL: …}``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mcsp.bids import (
    HEAD_COLUMNS,
    NA_VALUES,
    TAIL_COLUMNS,
    USABLE,
    Inventory,
    Sidecars,
    UnusableCohortError,
    describe_groups,
    file_problem,
    inventory_row,
    label_specs,
    lookup_label,
    mapping_warnings,
    parse_name,
    problem_groups,
    read_participants,
    subject_info,
)
from mcsp.exceptions import CohortError, ConfigError
from mcsp.fmri import (
    MAX_CONSTANT_ROI_FRACTION,
    QC_COLUMNS,
    ParcellationResult,
    constant_roi_reason,
    timeseries_path,
    write_timeseries,
)
from mcsp.parallel import process_pool

log = logging.getLogger(__name__)

FORMATS = ("abide_pcp", "xcpd")
# ABIDE I repetition times (s) by phenotype SITE_ID, where public tables agree (see above).
ABIDE_SITE_TR: dict[str, float] = {
    "CALTECH": 2.0,
    "CMU": 2.0,
    "KKI": 2.5,
    "MAX_MUN": 3.0,
    "NYU": 2.0,
    "OHSU": 2.5,
    "OLIN": 1.5,
    "PITT": 1.5,
    "SDSU": 2.0,
    "STANFORD": 2.0,
    "TRINITY": 2.0,
    "UCLA_1": 3.0,
    "UCLA_2": 3.0,
    "UM_1": 2.0,
    "UM_2": 2.0,
    "USM": 2.0,
    "YALE": 2.0,
}
ABIDE_UNCONFIRMED_TR = {
    "LEUVEN_1": "public tables give 1.652 to 1.667 s",
    "LEUVEN_2": "public tables give 1.652 to 1.667 s",
    "SBL": "public tables give 2.2 or 2.5 s",
}
ABIDE_FD_COLUMN = "func_mean_fd"
MIN_VOLUMES = 10  # as clean_and_parcellate's default min_volumes
ZERO_VARIANCE = 1e-8  # as clean_and_parcellate
_ABIDE_NAME = re.compile(
    r"^(?P<site>.+)_(?P<subject>\d{7})_rois_(?P<atlas>[A-Za-z0-9]+)\.1D(\.gz)?$"
)
# XCP-D entities that come after the source (BOLD) entities in its file names.
_XCPD_DERIVED = frozenset({"space", "cohort", "res", "den", "seg", "atlas", "stat", "desc", "hemi"})
_STRATEGY = {
    "abide_pcp": "external: ABIDE PCP (C-PAC)",
    "xcpd": "external: XCP-D",
}


# --- inventory -----------------------------------------------------------------------------------


def build_imported_inventory(
    cohort: Mapping[str, Any],
    *,
    n_jobs: int = 1,
    max_constant_roi_fraction: float | None = None,
) -> Inventory:
    """One inventory row per time-series file of an ``abide_pcp`` or ``xcpd`` cohort.

    ``max_constant_roi_fraction`` is the config's ``fmri.max_constant_roi_fraction`` (None: its
    default); see ``constant_roi_limit``.

    Columns as ``mcsp.bids.build_inventory``'s: ``path`` and ``derivative`` are the source file,
    ``sidecar`` its XCP-D JSON (or empty). Each file is read (``n_jobs`` processes) so that
    unreadable, empty, mis-shaped or non-numeric files, and runs over the constant-ROI limit, are
    rows of status ``excluded`` with the reason.

    Raises:
        CohortError: the cohort cannot be used as a whole (folder missing or empty, no matching
            files, several atlases or spaces and none chosen, phenotype unreadable or lacking a
            column, no usable file).
        ConfigError: ``cohort`` is not of an imported format.
    """
    start = time.perf_counter()
    fmt = _format(cohort)
    name = str(cohort["name"])
    labels = label_specs(cohort)
    site_column = (cohort.get("participants") or {}).get("site_column")
    notes: list[str] = []
    if fmt == "abide_pcp":
        root = _check_folder(cohort, "timeseries.path")
        records = _abide_records(root, cohort)
        phenotype, by_subject = _read_phenotype(cohort, labels, site_column)
        info = {
            record["subject"]: _phenotype_info(
                record["subject"], by_subject, labels, site_column, phenotype
            )
            for record in records
        }
        protected = str(root)
    else:
        root = _check_folder(cohort, "timeseries.path")
        bids_root = _check_folder(cohort, "bids_root")
        records = _xcpd_records(root, cohort)
        participants = read_participants(bids_root, labels, site_column)
        notes = mapping_warnings(bids_root / "participants.tsv", participants, labels, name)
        info = {}
        for record in records:
            site, values, warnings = subject_info(
                record["subject"], participants, labels, site_column
            )
            info[record["subject"]] = (site, values, [("warning", w) for w in warnings])
        protected = str(bids_root)

    expected = _reference_labels([Path(r["path"]) for r in records], fmt)
    limit = constant_roi_limit(cohort, max_constant_roi_fraction)
    jobs = [(r["path"], fmt, expected, limit, False) for r in records]
    for record, parsed in zip(records, _map(_parse_job, jobs, n_jobs), strict=True):
        record["problems"] += parsed.problems
    rows = []
    for record in records:
        site, values, problems = info[record["subject"]]
        record["problems"] += problems
        if not any(status == "excluded" for status, _ in record["problems"]):
            warning = _repetition_time(cohort, fmt, Path(record["path"]), site)[2]
            if warning:
                record["problems"].append(("warning", warning))
        rows.append(inventory_row(name, record, site, values, []))
    table = pd.DataFrame(rows, columns=HEAD_COLUMNS + list(labels) + TAIL_COLUMNS)
    for label in labels:
        table[label] = table[label].astype("Int64")
    table = table.sort_values(["subject", "session", "task", "run", "path"], kind="stable")
    table = table.reset_index(drop=True)
    inventory = Inventory(name, table, protected, tuple(notes))
    if not table["status"].isin(["ok", "warning"]).any():
        raise UnusableCohortError(
            f"{root}: no usable time-series file ({len(table)} checked). Most common problems:\n  "
            + "\n  ".join(describe_groups(problem_groups(table), limit=3))
            + "\nFix these (or the cohort file's timeseries settings), then run "
            "`mcsp cohort check`.",
            inventory,
        )
    log.info(
        "cohort %s (%s): %d files, %d usable in %.1f s",
        name,
        fmt,
        len(table),
        int(table["status"].isin(["ok", "warning"]).sum()),
        time.perf_counter() - start,
    )
    return inventory


def _format(cohort: Mapping[str, Any]) -> str:
    fmt = cohort.get("format", "bids")
    if fmt not in FORMATS:
        raise ConfigError(
            f"cohort '{cohort.get('name')}': format {fmt!r} is not an imported format "
            f"({', '.join(FORMATS)}); BIDS cohorts go through mcsp.bids.build_inventory."
        )
    return fmt


def _setting(cohort: Mapping[str, Any], dotted: str) -> Any:
    value: Any = cohort
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _check_folder(cohort: Mapping[str, Any], key: str) -> Path:
    """An existing, non-empty input folder named by ``key`` (absolute)."""
    name = cohort["name"]
    value = _setting(cohort, key)
    where = f"{key} of cohort '{name}'"
    if not value:
        raise CohortError(
            f"cohort '{name}': {key} is not set. Fix: set {key} in config/cohorts/{name}.yaml."
        )
    root = Path(os.path.abspath(value))
    fix = (
        f"Fix: set {key} in config/cohorts/{name}.yaml to the right folder (relative paths "
        f"start at {Path.cwd()}), or fetch the data there."
    )
    if not root.exists():
        raise CohortError(f"{root} ({where}) does not exist. {fix}")
    if not root.is_dir():
        raise CohortError(f"{root} ({where}) is not a folder. {fix}")
    if not any(root.iterdir()):
        raise CohortError(f"{root} ({where}) is empty. {fix}")
    return root


def constant_roi_limit(
    cohort: Mapping[str, Any], config_limit: float | None = None
) -> tuple[float, str]:
    """The constant-ROI limit of an imported cohort and the setting it comes from.

    The cohort's ``timeseries.max_constant_roi_fraction`` when not null (an override), else the
    config's ``fmri.max_constant_roi_fraction`` (``config_limit``; None: its default 0.1), the
    limit BIDS runs use.
    """
    value = _setting(cohort, "timeseries.max_constant_roi_fraction")
    if value is not None:
        return float(value), "timeseries.max_constant_roi_fraction"
    limit = MAX_CONSTANT_ROI_FRACTION if config_limit is None else float(config_limit)
    return limit, "fmri.max_constant_roi_fraction"


def _new_record(path: Path, subject: str, session: str, task: str, run: str) -> dict[str, Any]:
    return {
        "subject": subject,
        "session": session,
        "modality": "fmri",
        "task": task,
        "run": run,
        "path": str(path),
        "sidecar": "",
        "derivative": str(path),
        "problems": [],
    }


def _choose(
    found: Mapping[str, int], chosen: str | None, what: str, key: str, root: Path, name: str
) -> str:
    """The one value of ``what`` to import (``chosen`` or the only one found)."""
    listing = ", ".join(f"{v} ({n} files)" for v, n in sorted(found.items()))
    if chosen is not None:
        if chosen not in found:
            raise CohortError(
                f"{root}: no time-series files of {what} {chosen!r} (found: {listing}). Fix: set "
                f"{key} in config/cohorts/{name}.yaml to one of these."
            )
        return chosen
    if len(found) > 1:
        plural = "atlases" if what == "atlas" else f"{what}s"
        raise CohortError(
            f"{root}: time series of several {plural} ({listing}) and {key} is null. Fix: set "
            f"{key} in config/cohorts/{name}.yaml to the one to import."
        )
    return next(iter(found))


def _abide_records(root: Path, cohort: Mapping[str, Any]) -> list[dict[str, Any]]:
    name = cohort["name"]
    files = sorted(p for p in root.iterdir() if re.search(r"\.1D(\.gz)?$", p.name))
    matched = [(p, _ABIDE_NAME.match(p.name)) for p in files]
    for path, match in matched:
        if match is None:
            log.warning("%s: not an ABIDE PCP file name (<SITE>_<SUB_ID>_rois_<atlas>.1D)", path)
    atlases = Counter(m["atlas"] for _, m in matched if m)
    if not atlases:
        raise CohortError(
            f"{root} (timeseries.path of cohort '{name}'): no ABIDE PCP time-series files "
            "(<SITE>_<7-digit SUB_ID>_rois_<atlas>.1D or .1D.gz). Fix: point timeseries.path at "
            "the rois_<atlas> folder of the ABIDE Preprocessed download."
        )
    key = "timeseries.atlas"
    atlas = _choose(atlases, _setting(cohort, key), "atlas", key, root, name)
    records, seen = [], {}
    for path, match in matched:
        if match is None or match["atlas"] != atlas:
            continue
        record = _new_record(path, match["subject"], "", "rest", "")
        if match["subject"] in seen:
            reason = f"duplicate of {seen[match['subject']]} (same SUB_ID)"
            record["problems"].append(("excluded", reason))
        else:
            seen[match["subject"]] = path.name
        records.append(record)
    return records


def _xcpd_records(root: Path, cohort: Mapping[str, Any]) -> list[dict[str, Any]]:
    name = cohort["name"]
    files = sorted(root.glob("sub-*/func/*_timeseries.tsv"))
    files += sorted(root.glob("sub-*/ses-*/func/*_timeseries.tsv"))
    candidates = []
    for path in files:
        entities = parse_name(path.name)[0]
        atlas = entities.get("seg") or entities.get("atlas")
        if atlas and entities.get("stat", "mean") == "mean" and "sub" in entities:
            candidates.append((path, entities, atlas))
    if not candidates:
        raise CohortError(
            f"{root} (timeseries.path of cohort '{name}'): no XCP-D parcellated time series "
            "(sub-*/[ses-*/]func/*_seg-<atlas>_stat-mean_timeseries.tsv). Fix: point "
            "timeseries.path at XCP-D's output folder (the one holding sub-*/), and check that "
            "XCP-D ran with parcellation."
        )
    key = "timeseries.atlas"
    atlases = Counter(a for _, _, a in candidates)
    atlas = _choose(atlases, _setting(cohort, key), "atlas", key, root, name)
    candidates = [c for c in candidates if c[2] == atlas]
    spaces = Counter(e.get("space", "") for _, e, _ in candidates)
    key = "timeseries.space"
    space = _choose(spaces, _setting(cohort, key), "space", key, root, name)
    candidates = [c for c in candidates if c[1].get("space", "") == space]
    tasks = list((cohort.get("fmri") or {}).get("tasks") or ["rest"])
    found_tasks = Counter(e.get("task", "") for _, e, _ in candidates)
    candidates = [c for c in candidates if c[1].get("task", "") in tasks]
    if not candidates:
        raise CohortError(
            f"{root}: no XCP-D time series of task(s) {', '.join(tasks)} for atlas {atlas} "
            f"(tasks found: {', '.join(sorted(found_tasks))}). Fix: set fmri.tasks in "
            f"config/cohorts/{name}.yaml."
        )
    records, seen = [], {}
    for path, entities, _ in candidates:
        record = _new_record(
            path,
            entities["sub"],
            entities.get("ses", ""),
            entities["task"],
            entities.get("run", ""),
        )
        json_path = path.with_suffix(".json")
        record["sidecar"] = str(json_path) if json_path.is_file() else ""
        key = tuple(record[k] for k in ("subject", "session", "task", "run"))
        if key in seen:
            reason = f"duplicate of {seen[key]} (same subject, session, task and run)"
            record["problems"].append(("excluded", reason))
        else:
            seen[key] = path.name
        records.append(record)
    return records


def _read_phenotype(
    cohort: Mapping[str, Any],
    labels: Mapping[str, tuple[str, dict[str, int]]],
    site_column: str | None,
) -> tuple[Path, dict[str, dict[str, str | None]]]:
    """The ABIDE phenotype CSV as {7-digit SUB_ID: {column: value or None}}."""
    name = cohort["name"]
    value = _setting(cohort, "timeseries.phenotype")
    fix = f"Fix: set timeseries.phenotype in config/cohorts/{name}.yaml to the phenotype CSV"
    if not value:
        raise CohortError(f"cohort '{name}': timeseries.phenotype is not set. {fix}.")
    path = Path(os.path.abspath(value))
    if not path.is_file():
        raise CohortError(
            f"{path} (timeseries.phenotype of cohort '{name}') does not exist. {fix} "
            "(Phenotypic_V1_0b_preprocessed1.csv of ABIDE Preprocessed)."
        )
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=NA_VALUES)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise CohortError(
            f"{path}: cannot be read as a comma-separated table ({err}). Fix the file or "
            "download the phenotype CSV again."
        ) from err
    df.columns = [str(c).strip() for c in df.columns]
    needed = {"SUB_ID"} | {column for column, _ in labels.values()}
    if site_column:
        needed.add(site_column)
    absent = sorted(needed - set(df.columns))
    if absent:
        shown = ", ".join(list(df.columns)[:12]) + (" …" if len(df.columns) > 12 else "")
        raise CohortError(
            f"{path}: column(s) {', '.join(absent)} not found (columns: {shown}). Fix the cohort "
            "file's labels.*.column / participants.site_column, or use ABIDE's phenotype CSV."
        )
    rows: dict[str, dict[str, str | None]] = {}
    for record in df.to_dict("records"):
        sub_id = str(record.get("SUB_ID") or "").strip()
        try:
            subject = f"{int(float(sub_id)):07d}"
        except ValueError:
            continue
        values = {k: None if pd.isna(v) else str(v).strip() or None for k, v in record.items()}
        rows.setdefault(subject, values)
    return path, rows


def _phenotype_info(
    subject: str,
    rows: Mapping[str, Mapping[str, str | None]],
    labels: Mapping[str, tuple[str, dict[str, int]]],
    site_column: str | None,
    phenotype: Path,
) -> tuple[str, dict[str, int | None], list[tuple[str, str]]]:
    """(site, label classes, problems) of one ABIDE subject from the phenotype rows."""
    values: dict[str, int | None] = dict.fromkeys(labels)
    row = rows.get(subject)
    if row is None:
        reason = (
            f"SUB_ID {int(subject)} not in the phenotype file {phenotype.name} (no labels, no "
            "site): add its row or remove the file"
        )
        return "n/a", values, [("excluded", reason)]
    problems = []
    causes = []
    for label, (column, mapping) in labels.items():
        raw = row.get(column)
        values[label] = None if raw is None else lookup_label(mapping, raw)
        if values[label] is None:
            causes.append(f"{column} is n/a" if raw is None else f"{column} {raw!r} not mapped")
    if labels and all(v is None for v in values.values()):
        problems.append(
            ("warning", f"no label ({', '.join(causes)}): usable for self-supervised pretraining")
        )
    site = "1"
    if site_column:
        site = row.get(site_column) or "n/a"
        if site == "n/a":
            problems.append(("warning", f"site missing ({site_column} is n/a in the phenotype)"))
    return site, values, problems


# --- reading one time-series file ----------------------------------------------------------------


@dataclass
class _Parsed:
    """One source file: ROI labels, time × ROI values (n/a columns as 0), problems."""

    labels: list[str] = field(default_factory=list)
    data: np.ndarray | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)
    zero_variance: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)

    @property
    def excluded(self) -> bool:
        return any(status == "excluded" for status, _ in self.problems)


def _first_line(path: Path) -> str:
    """The first line of a (possibly gzipped) text file."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return handle.readline().rstrip("\r\n")


def _header(path: Path, fmt: str) -> tuple[str, ...] | None:
    """ROI labels of a file's header line (None when unreadable or not a header)."""
    try:
        return _labels(_first_line(path).split("\t"), fmt)
    except (OSError, EOFError, UnicodeDecodeError, zlib.error):
        return None


def _labels(columns: Iterable[str], fmt: str) -> tuple[str, ...] | None:
    columns = [str(c).strip() for c in columns]
    if fmt == "abide_pcp":
        if not columns or not all(c.startswith("#") for c in columns):
            return None
        return tuple(c[1:] for c in columns)
    if not all(columns) or _is_number(columns[0]):
        return None
    return tuple(columns)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _reference_labels(paths: list[Path], fmt: str) -> tuple[str, ...] | None:
    """The ROI header most files share (the one every file of the atlas should have)."""
    headers = Counter(h for h in (_header(p, fmt) for p in paths) if h)
    return headers.most_common(1)[0][0] if headers else None


def _parse(
    path: Path, fmt: str, expected: tuple[str, ...] | None, limit: tuple[float, str]
) -> _Parsed:
    """Read and check one source file; problems are (status, reason) pairs."""
    parsed = _Parsed()
    if problem := file_problem(path):
        parsed.problems.append(("excluded", problem))
        return parsed
    try:
        line = _first_line(path)
        df = pd.read_csv(path, sep="\t", header=None, skiprows=1, na_values=["n/a"])
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except pd.errors.ParserError as err:
        message = " ".join(str(err).split())
        parsed.problems.append(("excluded", f"rows of different lengths ({message})"))
        return parsed
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as err:
        message = " ".join(str(err).split())
        parsed.problems.append(
            (
                "excluded",
                f"cannot be read ({type(err).__name__}: {message}); the file is truncated or "
                "corrupt: fetch it again",
            )
        )
        return parsed
    labels = _labels(line.split("\t"), fmt)
    if labels is None:
        what = "a '#' header line of ROI labels" if fmt == "abide_pcp" else "a header of ROI names"
        parsed.problems.append(("excluded", f"first line is not {what}"))
        return parsed
    parsed.labels = list(labels)
    if df.shape[0] == 0:
        parsed.problems.append(("excluded", "header only, no time points"))
        return parsed
    if df.shape[1] != len(labels):
        parsed.problems.append(
            (
                "excluded",
                f"rows have {df.shape[1]} values but the header names {len(labels)} ROIs",
            )
        )
        return parsed
    if expected is not None and labels != expected:
        if len(labels) != len(expected):
            reason = f"{len(labels)} ROI columns where the other files have {len(expected)}"
        else:
            k = next(i for i, (a, b) in enumerate(zip(labels, expected, strict=True)) if a != b)
            reason = (
                f"ROI labels differ from the other files' (column {k + 1}: {labels[k]!r}, "
                f"expected {expected[k]!r})"
            )
        parsed.problems.append(("excluded", reason))
        return parsed
    text = [i for i, dtype in enumerate(df.dtypes) if not pd.api.types.is_numeric_dtype(dtype)]
    if text:
        column = df.iloc[:, text[0]]
        bad = np.flatnonzero(pd.to_numeric(column, errors="coerce").isna() & column.notna())
        parsed.problems.append(
            (
                "excluded",
                f"non-numeric value {column.iloc[bad[0]]!r} (ROI {labels[text[0]]}, time point "
                f"{bad[0] + 1})",
            )
        )
        return parsed
    data = df.to_numpy(dtype=np.float64)
    if data.shape[0] < MIN_VOLUMES:
        parsed.problems.append(
            ("excluded", f"only {data.shape[0]} time points (need {MIN_VOLUMES})")
        )
        return parsed
    missing = np.isnan(data)
    all_missing = missing.all(axis=0)
    partial = missing.any(axis=0) & ~all_missing
    if np.isinf(data).any():
        parsed.problems.append(("excluded", "infinite values"))
        return parsed
    if partial.any() or (fmt == "abide_pcp" and all_missing.any()):
        columns = np.flatnonzero(partial | all_missing)
        names = ", ".join(labels[i] for i in columns[:5]) + (" …" if len(columns) > 5 else "")
        rows = np.flatnonzero(missing.any(axis=1))
        parsed.problems.append(
            (
                "excluded",
                f"missing values in {len(columns)} ROI column(s) ({names}) at "
                f"{len(rows)} time point(s), first {rows[0] + 1}: a truncated line?",
            )
        )
        return parsed
    data[:, all_missing] = 0.0
    zero = data.std(axis=0) < ZERO_VARIANCE
    empty = all_missing | ~data.any(axis=0)
    parsed.data = data
    parsed.zero_variance = [labels[i] for i in np.flatnonzero(zero)]
    parsed.empty = [labels[i] for i in np.flatnonzero(empty)]
    reason = constant_roi_reason(len(parsed.zero_variance), len(labels), *limit)
    if reason:
        parsed.problems.append(("excluded", reason))
    return parsed


def _parse_job(job: tuple[str, str, tuple[str, ...] | None, tuple[float, str], bool]) -> _Parsed:
    """``_parse`` for a process pool; drops the data unless asked to keep it."""
    path, fmt, expected, limit, keep = job
    parsed = _parse(Path(path), fmt, expected, limit)
    if not keep:
        parsed.data = None
    return parsed


def _map(func: Callable[[Any], Any], jobs: list[Any], n_jobs: int) -> list[Any]:
    """``[func(job) for job in jobs]``, in ``n_jobs`` processes when more than one."""
    n_jobs = max(1, min(int(n_jobs), len(jobs)))
    if n_jobs == 1:
        return [func(job) for job in jobs]
    with process_pool(n_jobs) as pool:
        return list(pool.map(func, jobs, chunksize=max(1, len(jobs) // (8 * n_jobs))))


# --- repetition time, motion ---------------------------------------------------------------------


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e3


def _repetition_time(
    cohort: Mapping[str, Any], fmt: str, path: Path, site: str
) -> tuple[float | None, str | None, str | None]:
    """(TR in s or None, where it came from, warning when unknown)."""
    setting = _setting(cohort, "timeseries.repetition_time")
    if _positive(setting):
        return float(setting), "timeseries.repetition_time", None
    if isinstance(setting, Mapping) and _positive(setting.get(site)):
        return float(setting[site]), f"timeseries.repetition_time.{site}", None
    name = cohort["name"]
    if fmt == "abide_pcp":
        if site in ABIDE_SITE_TR:
            return ABIDE_SITE_TR[site], "ABIDE I scan parameters (mcsp.imports.ABIDE_SITE_TR)", None
        why = ABIDE_UNCONFIRMED_TR.get(site, "not an ABIDE I site of mcsp's table")
        warning = (
            f"RepetitionTime unknown for site {site} ({why}): set timeseries.repetition_time "
            f"(e.g. {{{site}: <TR in s>}}) in config/cohorts/{name}.yaml"
        )
        return None, None, warning
    for where, meta in _xcpd_metadata(cohort, path):
        value = meta.get("RepetitionTime")
        if _positive(value):
            return float(value), where, None
        frequency = meta.get("SamplingFrequency")
        if _positive(frequency):
            return 1.0 / float(frequency), where, None
    warning = (
        "RepetitionTime not found (time-series JSON, denoised BOLD JSON, raw _bold.json): set "
        f"timeseries.repetition_time in config/cohorts/{name}.yaml"
    )
    return None, None, warning


def _read_json(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def _source_prefix(name: str) -> str:
    """XCP-D file name -> its source (BOLD) entities, e.g. ``sub-01_ses-1_task-rest_run-1``."""
    parts = []
    for part in name.partition(".")[0].split("_"):
        key = part.split("-", 1)[0]
        if "-" not in part or key in _XCPD_DERIVED:
            break
        parts.append(part)
    return "_".join(parts)


def _xcpd_metadata(cohort: Mapping[str, Any], path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, JSON metadata) that may hold an XCP-D time series' TR, nearest first: its own
    JSON, the denoised BOLD JSON beside it, the raw BOLD's (BIDS inheritance, merged)."""
    source = _source_prefix(path.name)
    found = [path.with_suffix(".json")]
    found += sorted(path.parent.glob(f"{source}_*desc-denoised*_bold.json"))
    metadata = [(str(p), _read_json(p)) for p in found if p.is_file()]
    bids_root, ts_root = _setting(cohort, "bids_root"), _setting(cohort, "timeseries.path")
    if bids_root and ts_root:
        root = Path(os.path.abspath(bids_root))
        with contextlib.suppress(ValueError):
            rel = path.parent.relative_to(Path(os.path.abspath(ts_root)))
            raw = root / rel / f"{source}_bold.nii.gz"
            nearest, merged, _ = Sidecars(root).resolve(raw, "bold")
            if nearest is not None:
                metadata.append((f"{nearest} (BIDS inheritance)", merged))
    return metadata


def _xcpd_motion(path: Path) -> tuple[float, np.ndarray | None]:
    """(mean FD from ``<source>_motion.tsv`` or NaN, 0/1 outlier flags from ``_outliers.tsv``)."""
    source = _source_prefix(path.name)
    mean_fd = float("nan")
    for motion in sorted(path.parent.glob(f"{source}_*motion.tsv")):
        try:
            fd = pd.read_csv(motion, sep="\t", na_values=["n/a"])["framewise_displacement"]
        except (OSError, KeyError, ValueError, pd.errors.ParserError):
            continue
        mean_fd = float(pd.to_numeric(fd, errors="coerce").mean())
        break
    flags = None
    for outliers in sorted(path.parent.glob(f"{source}_*outliers.tsv")):
        try:
            column = pd.read_csv(outliers, sep="\t")["framewise_displacement"]
            flags = column.fillna(0).to_numpy(dtype=float) > 0
        except (OSError, KeyError, ValueError, pd.errors.ParserError):
            continue
        break
    return mean_fd, flags


# --- import --------------------------------------------------------------------------------------


def contract_path(out_dir: str | Path, row: Mapping[str, Any], atlas: str) -> Path:
    """Contract file of an inventory row: ``sub-<l>/[ses-<s>/]func/<prefix>_atlas-<a>_…tsv``."""
    subject, session = str(row["subject"]), str(row.get("session") or "")
    task, run = str(row.get("task") or "rest"), str(row.get("run") or "")
    folder = Path(out_dir) / f"sub-{subject}"
    if session:
        folder = folder / f"ses-{session}"
    parts = [f"sub-{subject}", *([f"ses-{session}"] if session else []), f"task-{task}"]
    parts += [f"run-{run}"] if run else []
    return timeseries_path(folder / "func", "_".join(parts), atlas)


def atlas_of(path: str | Path, fmt: str) -> str:
    """Atlas name of a source file (ABIDE ``rois_<atlas>`` suffix, XCP-D ``seg-``/``atlas-``)."""
    name = Path(path).name
    if fmt == "abide_pcp":
        match = _ABIDE_NAME.match(name)
        return match["atlas"] if match else ""
    entities = parse_name(name)[0]
    return entities.get("seg") or entities.get("atlas") or ""


def import_timeseries(
    cohort: Mapping[str, Any],
    inventory: Inventory,
    out_dir: str | Path,
    *,
    n_jobs: int = 1,
    max_constant_roi_fraction: float | None = None,
) -> pd.DataFrame:
    """Write every usable fMRI row of ``inventory`` as a contract time series + sidecar.

    Values are the source's (``write_timeseries`` keeps 6 significant digits); XCP-D ``n/a``
    columns become 0 and volumes XCP-D flagged as outliers but interpolated are dropped. Rows the
    inventory excluded, or that fail the checks now, get no file. ``n_jobs`` processes.
    ``max_constant_roi_fraction``: the config's ``fmri`` limit (see ``constant_roi_limit``).

    Returns:
        The fMRI QC table (``QC_COLUMNS``), one row per fMRI inventory row; ``timeseries`` is
        empty for excluded rows.

    Raises:
        ConfigError: ``out_dir`` lies inside an input folder, or the format is not imported.
    """
    fmt = _format(cohort)
    out_dir = Path(out_dir)
    _check_output(cohort, inventory, out_dir)
    labels = label_specs(cohort)
    site_column = (cohort.get("participants") or {}).get("site_column")
    fd_by_subject: dict[str, float] = {}
    if fmt == "abide_pcp":
        _, rows = _read_phenotype(cohort, labels, site_column)
        for subject, row in rows.items():
            fd_by_subject[subject] = pd.to_numeric(row.get(ABIDE_FD_COLUMN), errors="coerce")
    table = inventory.table
    records = table[table["modality"] == "fmri"].to_dict("records")
    usable = [r for r in records if r["status"] in USABLE]
    expected = _reference_labels([Path(r["path"]) for r in usable], fmt)
    limit = constant_roi_limit(cohort, max_constant_roi_fraction)
    jobs = []
    for record in records:
        atlas = atlas_of(record["path"], fmt)
        tr, tr_source, tr_warning = _repetition_time(
            cohort, fmt, Path(record["path"]), str(record["site"])
        )
        jobs.append(
            {
                "cohort": str(cohort["name"]),
                "format": fmt,
                "record": {k: record[k] for k in ("subject", "session", "task", "run", "path")},
                "inventory_status": record["status"],
                "inventory_reason": record["reason"],
                "atlas": atlas,
                "space": _space_of(record["path"], fmt),
                "site": str(record["site"]),
                "out_tsv": str(contract_path(out_dir, record, atlas)),
                "expected": expected,
                "limit": limit,
                "tr": tr,
                "tr_source": tr_source,
                "tr_warning": tr_warning,
                "mean_fd": fd_by_subject.get(record["subject"], float("nan")),
            }
        )
    rows = _map(_import_one, jobs, n_jobs)
    qc = pd.DataFrame(rows, columns=QC_COLUMNS)
    return qc.sort_values(["subject", "session", "task", "run"], kind="stable").reset_index(
        drop=True
    )


def _check_output(cohort: Mapping[str, Any], inventory: Inventory, out_dir: Path) -> None:
    inputs = [
        inventory.bids_root,
        _setting(cohort, "timeseries.path"),
        _setting(cohort, "bids_root"),
    ]
    series, phenotype = (
        _setting(cohort, "timeseries.path"),
        _setting(cohort, "timeseries.phenotype"),
    )
    if series and phenotype:  # ABIDE's download: phenotype CSV beside the rois_<atlas> folder
        dataset = Path(phenotype).resolve().parent
        if Path(series).resolve().is_relative_to(dataset):
            inputs.append(str(dataset))
    target = out_dir.resolve()
    for folder in filter(None, inputs):
        if target.is_relative_to(Path(folder).resolve()):
            raise ConfigError(
                f"{out_dir}: refusing to write imported time series inside the input folder "
                f"{folder}; mcsp never writes into input data. Write them under results/."
            )


def _space_of(path: str | Path, fmt: str) -> str | None:
    """Template of the source data: ABIDE PCP's MNI152, XCP-D's ``space-`` entity."""
    if fmt == "abide_pcp":
        return "MNI152"
    return parse_name(Path(path).name)[0].get("space")


def _import_one(job: Mapping[str, Any]) -> dict[str, Any]:
    """Import one source file; returns its QC row (``QC_COLUMNS``)."""
    record = job["record"]
    path = Path(record["path"])
    row: dict[str, Any] = {
        "cohort": job["cohort"],
        **{k: record[k] for k in ("subject", "session", "task", "run")},
        "atlas": job["atlas"],
        "timeseries": "",
        "mean_fd": float(job["mean_fd"]),
        "n_non_steady_state": 0,
    }
    parsed = _parse(path, job["format"], job["expected"], job["limit"])
    problems = list(parsed.problems)
    n_volumes = 0 if parsed.data is None else parsed.data.shape[0]
    censored = np.zeros(n_volumes, dtype=bool)
    if job["format"] == "xcpd" and parsed.data is not None:
        mean_fd, flags = _xcpd_motion(path)
        row["mean_fd"] = mean_fd
        if flags is not None and flags.any():
            if len(flags) == n_volumes:  # interpolated output: drop the flagged volumes
                censored = flags
            elif len(flags) == n_volumes + int(flags.sum()):  # already censored by XCP-D
                n_volumes, censored = len(flags), flags
            else:
                problems.append(
                    (
                        "warning",
                        f"outliers file has {len(flags)} rows ({int(flags.sum())} flagged) but "
                        f"the time series {n_volumes}: censoring not recorded",
                    )
                )
    kept = np.flatnonzero(~censored)
    if job["tr_warning"]:
        problems.append(("warning", job["tr_warning"]))
    if job["inventory_status"] not in USABLE:
        problems = [(job["inventory_status"], f"inventory: {job['inventory_reason']}")]
    elif parsed.data is not None and len(kept) < MIN_VOLUMES and not parsed.excluded:
        problems.append(("excluded", f"only {len(kept)} volumes left after XCP-D's censoring"))
    statuses = {s for s, _ in problems}
    status = next((s for s in ("missing", "excluded", "warning") if s in statuses), "ok")
    reason = "; ".join(dict.fromkeys(r for _, r in problems))
    row.update(
        n_volumes=n_volumes,
        n_censored=int(censored.sum()),
        pct_censored=100.0 * censored.sum() / max(n_volumes, 1),
        n_kept=len(kept) if parsed.data is not None else 0,
        zero_variance_rois=";".join(parsed.zero_variance),
        empty_rois=";".join(parsed.empty),
        status=status,
        reason=reason,
    )
    if status not in USABLE or parsed.data is None:
        return row
    if job["format"] == "xcpd" and censored.any() and len(censored) == parsed.data.shape[0]:
        data = parsed.data[~censored]
    else:
        data = parsed.data
    timeseries = pd.DataFrame(data, columns=parsed.labels)
    sidecar = {
        "RepetitionTime": job["tr"],
        "RepetitionTimeSource": job["tr_source"],
        "Atlas": job["atlas"],
        "AtlasKind": "labels",
        "AtlasSpace": job["space"],
        "SphereRadiusMm": None,
        "ConfoundStrategy": _STRATEGY[job["format"]],
        "StrategyOptions": {},
        "Confounds": [],
        "NonSteadyStateVolumes": [],
        "CensoredVolumes": np.flatnonzero(censored).tolist(),
        "KeptVolumes": kept.tolist(),
        "NumberOfVolumes": n_volumes,
        "FDThreshold": None,
        "StdDVARSThreshold": None,
        "Detrend": False,
        "Standardize": False,
        "LowPass": None,
        "HighPass": None,
        "ZeroVarianceROIs": parsed.zero_variance,
        "EmptyROIs": parsed.empty,
        "Site": job["site"],
        "Source": str(path),
    }
    if job["format"] == "xcpd":
        sidecar["SourceMetadata"] = _read_json(path.with_suffix(".json"))
    qc = {
        "source": str(path),
        "atlas": job["atlas"],
        "mean_fd": row["mean_fd"],
        "n_volumes": n_volumes,
        "n_non_steady_state": 0,
        "n_censored": row["n_censored"],
        "pct_censored": row["pct_censored"],
        "n_kept": row["n_kept"],
        "zero_variance_rois": parsed.zero_variance,
        "empty_rois": parsed.empty,
        "status": status,
        "reason": reason,
    }
    out_tsv, _ = write_timeseries(ParcellationResult(timeseries, sidecar, qc), job["out_tsv"])
    row["timeseries"] = str(out_tsv)
    return row
