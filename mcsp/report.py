"""One self-contained HTML page describing a results directory.

Sections: cohorts, fMRI QC, EEG QC, dataset store, pretraining, evaluation and provenance. Figures
are PNG data URIs drawn with matplotlib (Agg), the CSS is inline, and per-recording pages (MNE
reports, subject figures) are linked with relative paths, so the page opens offline. Every section
says in place what it could not show (a missing table, one class, NaN folds) instead of failing.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mcsp.bids import HEAD_COLUMNS, TAIL_COLUMNS
from mcsp.compare import PAIRED_COLUMNS
from mcsp.io import write_text
from mcsp.tables import short_reason

log = logging.getLogger(__name__)

SECTIONS = (
    ("cohorts", "Cohorts"),
    ("fmri-qc", "fMRI quality control"),
    ("eeg-qc", "EEG quality control"),
    ("store", "Dataset store"),
    ("pretraining", "Pretraining"),
    ("evaluation", "Evaluation"),
    ("provenance", "Provenance"),
)
TEXT_COLUMNS = (  # read as text: identifiers ("0050002"), folds ("pooled"), ROI lists ("34;55")
    "cohort",
    "subject",
    "session",
    "task",
    "run",
    "site",
    "fold",
    "seed",
    "sample_id",
    "zero_variance_rois",
    "empty_rois",
)
INVENTORY_COLUMNS = {*HEAD_COLUMNS, *TAIL_COLUMNS}  # the rest of an inventory are labels
LOSS_TERMS = ("total", "contrastive", "distillation", "consistency", "reconstruction")
PAIR_KINDS = ("natural", "cross", "fmri_only", "eeg_only")
MAX_ROWS = 200  # rows of a listed table shown before the note that it was cut
MAX_LINKS = 300
MAX_ROC_CURVES = 10  # more (experiment, model) curves per task: the first experiment's
MAX_CURVE_POINTS = 400
N_PSD = 3  # recordings whose PSD before/after is shown from their MNE report
DPI = 100

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
line-height:1.45;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:1em 2em}
header h1{margin:0 0 .2em 0;font-size:1.6em}
header p{margin:.1em 0;color:#d6e2ee}
nav{background:#e8eef4;padding:.5em 2em;position:sticky;top:0;z-index:1;
border-bottom:1px solid #c9d6e2}
nav a{margin-right:1.2em;color:#1f3b57;text-decoration:none;font-weight:600}
nav a:hover{text-decoration:underline}
main{padding:0 2em 3em 2em;max-width:1400px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;margin:1.2em 0;
padding:.4em 1.4em 1em 1.4em}
h2{color:#1f3b57;border-bottom:2px solid #e8eef4;padding-bottom:.2em}
h3{color:#2c5473;margin-top:1.4em}
h4{margin:1em 0 .3em 0}
table{border-collapse:collapse;margin:.5em 0 1em 0;font-size:.88em}
th,td{border:1px solid #d5dde5;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f4f8}
tr:nth-child(even) td{background:#fafcfd}
td.num,th.num{text-align:right}
p.missing{color:#8a5300;background:#fff6e5;border-left:4px solid #f0a030;padding:.4em .8em}
p.note{color:#555;font-size:.92em}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
details{margin:.5em 0}
summary{cursor:pointer;color:#1f3b57}
.scroll{overflow-x:auto;max-width:100%}
pre{background:#f4f6f8;padding:.8em;overflow:auto;font-size:.85em;max-height:40em}
ul.links{columns:3;font-size:.88em}
.psd{display:flex;flex-wrap:wrap;gap:1em}
.psd figure{margin:0;max-width:32%}
figcaption{font-size:.85em;color:#555}
"""

# ---------------------------------------------------------------------------------- helpers


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _missing(text: str) -> str:
    return f'<p class="missing">{_esc(text)}</p>'


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "" if np.isnan(value) else f"{value:.4g}"
    if value is None or value is pd.NA:
        return ""
    return str(value)


def _table(df: pd.DataFrame, index: bool = False, max_rows: int = MAX_ROWS) -> str:
    """An escaped HTML table; rows beyond ``max_rows`` are cut with a note."""
    if df.empty:
        return _missing("(empty table)")
    cut = len(df) > max_rows
    shown = (df.head(max_rows) if cut else df).copy()
    if index:
        shown = shown.reset_index()
    if isinstance(shown.columns, pd.MultiIndex):
        shown.columns = [" · ".join(str(p) for p in c if str(p)) for c in shown.columns]
    shown.columns.name = None
    for i, dtype in enumerate(shown.dtypes):
        if pd.api.types.is_object_dtype(dtype):
            shown.iloc[:, i] = shown.iloc[:, i].map(_fmt)
    text = shown.to_html(index=False, na_rep="", border=0, escape=True, float_format=_fmt)
    text = f'<div class="scroll">{text}</div>'
    if cut:
        text += _note(f"… {len(df) - max_rows} more rows not shown ({len(df)} in all).")
    return text


def _read_tsv(path: Path) -> pd.DataFrame:
    """A TSV with identifier columns kept as text (subject ``0050002`` stays as written)."""
    head = pd.read_csv(path, sep="\t", nrows=0)
    dtype = {c: str for c in TEXT_COLUMNS if c in head.columns}
    return pd.read_csv(path, sep="\t", dtype=dtype)


def _load(path: Path, what: str) -> tuple[pd.DataFrame | None, str]:
    """``(table, "")`` or ``(None, note)`` when the file is absent, empty or unreadable."""
    if not path.is_file():
        return None, _missing(f"No {what}: {path.name} is missing.")
    try:
        return _read_tsv(path), ""
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        return None, _missing(f"{what}: {path.name} could not be read ({err}).")


def _png(fig: Any, alt: str) -> str:
    """A matplotlib figure as an ``<img>`` with a base64 PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _figure(ncols: int, width: float = 4.0, height: float = 3.0, nrows: int = 1) -> tuple:
    from matplotlib.figure import Figure  # Agg canvas; pyplot's global state is never touched

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    return fig, axes


def _label_text(values: pd.Series) -> pd.Series:
    """Label values as text: 1.0 (a column with blanks read as float) shows as 1, blank as n/a."""

    def text(v: Any) -> str:
        if pd.isna(v):
            return "n/a"
        if isinstance(v, float | np.floating) and float(v).is_integer():
            return str(int(v))
        return str(v)

    return values.map(text)


def _reason_kinds(reasons: pd.Series) -> pd.DataFrame:
    """Counts per reason, with file paths replaced by ``<file>`` so that one cause is one row."""
    kinds = (
        reasons.fillna("").astype(str).str.replace(r"[\w.~-]*(?:/[\w.~-]+)+", "<file>", regex=True)
    )
    return kinds.value_counts().rename("recordings").rename_axis("reason").to_frame()


def _histograms(df: pd.DataFrame, columns: Sequence[tuple[str, str]], alt: str) -> str:
    """One histogram per ``(column, label)`` present with numbers; notes for the others."""
    present: list[tuple[str, str, np.ndarray]] = []
    notes = []
    for column, label in columns:
        values = pd.to_numeric(df[column], errors="coerce") if column in df else None
        if values is None:
            notes.append(_missing(f"{label}: no column {column}."))
        elif values.notna().sum() == 0:
            notes.append(_missing(f"{label}: no values."))
        elif values.nunique() == 1:
            first = _fmt(values.dropna().iloc[0])
            notes.append(_note(f"{label}: {first} in all {values.notna().sum()} recordings."))
        else:
            present.append((column, label, values.dropna().to_numpy(dtype=float)))
    text = "".join(notes)
    if present:
        fig, axes = _figure(len(present), width=3.6, height=2.6)
        for ax, (_, label, values) in zip(axes, present, strict=True):
            bins = min(30, max(5, len(np.unique(values))))
            ax.hist(values, bins=bins, color="#3b75af", edgecolor="white")
            ax.set(xlabel=label, ylabel="recordings")
            ax.set_title(f"median {np.median(values):.3g}, n = {len(values)}", fontsize=9)
        text = _png(fig, alt) + text
    return text


def _href(target: Path, base: Path) -> str:
    rel = os.path.relpath(target.resolve(), base.resolve())
    return html.escape(urllib.parse.quote(Path(rel).as_posix()), quote=True)


def _links(paths: Sequence[Path], base: Path, root: Path, what: str) -> str:
    if not paths:
        return ""
    items = "".join(
        f'<li><a href="{_href(p, base)}">{_esc(p.relative_to(root).as_posix())}</a></li>'
        for p in paths[:MAX_LINKS]
    )
    more = _note(f"… {len(paths) - MAX_LINKS} more not listed.") if len(paths) > MAX_LINKS else ""
    return (
        f"<details><summary>{len(paths)} {_esc(what)} (links)</summary>"
        f'<ul class="links">{items}</ul>{more}</details>'
    )


def _cohorts(results: Path) -> list[Path]:
    return sorted(p.parent for p in results.glob("*/inventory.tsv"))


def _downsample(values: pd.DataFrame, n: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    if len(values) <= n:
        return values
    return values.iloc[np.linspace(0, len(values) - 1, n).round().astype(int)]


@dataclass
class _Context:
    results: Path
    out_dir: Path


# --------------------------------------------------------------------------------- sections


def _section_cohorts(ctx: _Context) -> str:
    cohorts = _cohorts(ctx.results)
    if not cohorts:
        return _missing("No cohort: no <cohort>/inventory.tsv under the results folder.")
    parts = []
    for folder in cohorts:
        parts.append(f"<h3>{_esc(folder.name)}</h3>")
        inv, note = _load(folder / "inventory.tsv", "inventory")
        if inv is None:
            parts.append(note)
            continue
        for column in ("modality", "status", "reason", "site"):
            if column not in inv:
                inv[column] = ""
        inv = inv.fillna({"modality": "?", "status": "?", "reason": "", "site": "?"})
        subjects = inv["subject"].nunique() if "subject" in inv else "?"
        parts.append(_note(f"{len(inv)} recordings of {subjects} subjects."))
        parts.append("<h4>Recordings by modality and status</h4>")
        counts = pd.crosstab(inv["modality"], inv["status"], margins=True, margins_name="all")
        parts.append(_table(counts, index=True))
        bad = inv[inv["status"] != "ok"]
        parts.append("<h4>Exclusions and warnings</h4>")
        if bad.empty:
            parts.append(_note("Every recording is ok."))
        else:
            for status, rows in bad.groupby("status"):
                parts.append(_note(f"{len(rows)} {status}:"))
                parts.append(_table(_reason_kinds(rows["reason"]), index=True))
            keep = [
                c
                for c in ("subject", "session", "modality", "task", "run", "site", "status")
                if c in bad
            ]
            parts.append(
                f"<details><summary>{len(bad)} recordings not ok</summary>"
                f"{_table(bad[[*keep, 'reason']])}</details>"
            )
        parts.append("<h4>Sites</h4>")
        parts.append(_table(_site_table(inv), index=True))
    return "".join(parts)


def _site_table(inv: pd.DataFrame) -> pd.DataFrame:
    """Per site: subjects, recordings per modality and each label's value counts."""
    by_site = pd.crosstab(inv["site"], inv["modality"])
    by_site.columns = [f"{c} recordings" for c in by_site.columns]
    if "subject" in inv:
        subjects = inv.drop_duplicates(["site", "subject"])
        by_site.insert(0, "subjects", subjects.groupby("site").size())
        labels = [c for c in inv.columns if c not in INVENTORY_COLUMNS]
        for label in labels:
            values = _label_text(subjects[label])
            counts = pd.crosstab(subjects["site"], values)
            by_site[label] = [
                ", ".join(f"{v}: {n}" for v, n in row.items() if n) for _, row in counts.iterrows()
            ]
    return by_site


def _constant_rois(qc: pd.DataFrame) -> pd.Series:
    """Per recording, the number of ROIs listed as zero-variance or empty."""
    columns = [c for c in ("zero_variance_rois", "empty_rois") if c in qc]

    def count(row: pd.Series) -> float:
        rois: set[str] = set()
        for column in columns:
            value = row[column]
            if isinstance(value, str):
                rois.update(v for v in value.split(";") if v.strip())
        return float(len(rois))

    return qc.apply(count, axis=1) if columns else pd.Series(np.nan, index=qc.index)


def _qc_summary(
    path: Path,
    what: str,
    columns: Sequence[tuple[str, str]],
    title: str,
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> tuple[str, pd.DataFrame | None]:
    """A cohort's QC table as recordings per status and histograms of ``columns`` (after
    ``prepare``), and the table; a note and None when it is missing or empty."""
    qc, note = _load(path, what)
    if qc is None:
        return note, None
    if qc.empty:
        return _missing(f"{path.name} has no rows."), None
    status = qc["status"].fillna("?") if "status" in qc else pd.Series("?", qc.index)
    text = _table(status.value_counts().rename("recordings").to_frame(), index=True)
    if prepare is not None:
        qc = prepare(qc)
    return text + _histograms(qc, columns, title), qc


def _section_fmri(ctx: _Context) -> str:
    cohorts = _cohorts(ctx.results)
    if not cohorts:
        return _missing("No cohort, so no fMRI QC.")
    parts = []
    for folder in cohorts:
        parts.append(f"<h3>{_esc(folder.name)}</h3>")
        columns = [
            ("mean_fd", "mean framewise displacement (mm)"),
            ("pct_censored", "censored volumes (%)"),
            ("constant_rois", "ROIs without signal"),
        ]
        text, qc = _qc_summary(
            folder / "fmri_qc.tsv",
            "fMRI QC table (no fMRI in this cohort, or its QC step has not run)",
            columns,
            f"fMRI motion, censoring, ROIs: {folder.name}",
            prepare=lambda qc: qc.assign(constant_rois=_constant_rois(qc)),
        )
        parts.append(text if qc is None else text + _roi_coverage(qc))
        figures = sorted((folder / "figures").glob("*.png")) + sorted(
            (folder / "fmri").rglob("*.png")
        )
        pages = sorted((folder / "fmri").rglob("*.html"))
        links = _links(figures, ctx.out_dir, ctx.results, "per-subject fMRI figures")
        links += _links(pages, ctx.out_dir, ctx.results, "per-recording fMRI pages")
        parts.append(links or _note("No per-subject fMRI figures or pages in this cohort."))
    return "".join(parts)


def _roi_coverage(qc: pd.DataFrame) -> str:
    if "constant_rois" not in qc or qc["constant_rois"].isna().all():
        return _missing("ROI coverage: no zero_variance_rois / empty_rois columns.")
    n = len(qc)
    with_gaps = int((qc["constant_rois"] > 0).sum())
    text = _note(f"ROI coverage: {n - with_gaps} of {n} recordings have signal in every ROI.")
    rois: dict[str, int] = {}
    for column in ("zero_variance_rois", "empty_rois"):
        for value in qc.get(column, pd.Series(dtype=object)).dropna():
            for roi in set(str(value).split(";")) - {""}:
                rois[roi] = rois.get(roi, 0) + 1
    if rois:
        top = pd.Series(rois, name="recordings").sort_values(ascending=False).head(15)
        text += "<h4>ROIs most often without signal</h4>" + _table(
            top.rename_axis("ROI").to_frame(), index=True
        )
    return text


def _psd_from_report(report: Path) -> str | None:
    """The "PSD before / after" figure of an MNE report as a PNG data URI (None if absent)."""
    text = report.read_text(errors="replace")
    match = re.search(
        r'alt="PSD before / after"\s*src="data:image/(\w+);base64,([A-Za-z0-9+/=\s]+)"', text
    )
    if match is None:
        return None
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(match.group(2))))
    image.thumbnail((600, 600))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _section_eeg(ctx: _Context) -> str:
    cohorts = _cohorts(ctx.results)
    if not cohorts:
        return _missing("No cohort, so no EEG QC.")
    parts = []
    for folder in cohorts:
        parts.append(f"<h3>{_esc(folder.name)}</h3>")
        columns = [
            ("n_bad_channels", "bad channels"),
            ("n_ica_removed", "ICA components removed"),
            ("percent_kept", "data kept (%)"),
        ]
        text, _ = _qc_summary(
            folder / "eeg_qc.tsv",
            "EEG QC table (no EEG in this cohort, or its QC step has not run)",
            columns,
            f"EEG QC distributions: {folder.name}",
        )
        parts.append(text)
        reports = sorted((folder / "eeg").rglob("*_report.html"))
        if not reports:
            parts.append(_note("No per-recording EEG reports in this cohort."))
            continue
        parts.append(_psd_figures(reports, ctx))
        parts.append(_links(reports, ctx.out_dir, ctx.results, "per-recording EEG reports (MNE)"))
    return "".join(parts)


def _psd_figures(reports: Sequence[Path], ctx: _Context) -> str:
    shown = []
    for report in reports:
        if len(shown) == N_PSD:
            break
        try:
            uri = _psd_from_report(report)
        except (OSError, ValueError) as err:
            log.warning("%s: PSD figure not read (%s)", report, err)
            continue
        if uri is not None:
            name = _esc(report.name.removesuffix("_report.html"))
            shown.append(
                f'<figure><img alt="PSD before / after: {name}" src="{uri}">'
                f'<figcaption><a href="{_href(report, ctx.out_dir)}">{name}</a></figcaption>'
                "</figure>"
            )
    if not shown:
        return _note("The EEG reports hold no PSD before / after figure.")
    return (
        f"<h4>PSD before / after cleaning ({len(shown)} recordings)</h4>"
        f'<div class="psd">{"".join(shown)}</div>'
    )


def _section_store(ctx: _Context) -> str:
    store = ctx.results / "store"
    if not store.is_dir():
        return _missing("No dataset store: results/store is missing (the store step has not run).")
    parts = []
    meta: dict[str, Any] = {}
    if (store / "store.json").is_file():
        try:
            meta = json.loads((store / "store.json").read_text())
        except (json.JSONDecodeError, OSError) as err:
            parts.append(_missing(f"store.json could not be read ({err})."))
        if meta:
            parts.append(_table(_store_facts(meta), index=True))
    else:
        parts.append(_missing("No store.json."))
    index, note = _load(store / "index.tsv", "sample index")
    parts.append("<h3>Windows and segments</h3>")
    if index is None:
        parts.append(note)
    elif {"modality", "task"} <= set(index.columns):
        counts = pd.crosstab(index["modality"], index["task"].fillna(""), margins=True)
        parts.append(_table(counts, index=True))
    else:
        parts.append(_missing("index.tsv has no modality / task columns."))
    parts.append("<h3>Pairs by kind</h3>")
    pairs, note = _load(store / "pairs.tsv", "pairs table")
    if pairs is None:
        parts.append(note)
    elif "kind" not in pairs:
        parts.append(_missing("pairs.tsv has no kind column."))
    else:
        kinds = (
            pairs["kind"]
            .value_counts()
            .reindex(list(dict.fromkeys([*PAIR_KINDS, *pairs["kind"].dropna()])), fill_value=0)
        )
        parts.append(_table(kinds.rename("pairs").rename_axis("kind").to_frame(), index=True))
    parts.append("<h3>Store exclusions</h3>")
    excl, note = _load(store / "exclusions.tsv", "store exclusions table")
    if excl is None:
        parts.append(note)
    elif excl.empty:
        parts.append(_note("No recording was excluded from the store."))
    else:
        reasons = excl.get("reason", pd.Series("?", excl.index))
        parts.append(_table(_reason_kinds(reasons), index=True))
        parts.append(f"<details><summary>{len(excl)} excluded</summary>{_table(excl)}</details>")
    parts.append("<h3>Fold balance</h3>")
    parts.append(_fold_balance(index, meta.get("labels") or []))
    return "".join(parts)


def _store_facts(meta: dict[str, Any]) -> pd.DataFrame:
    study = meta.get("study") or {}
    facts = {
        "cohorts": ", ".join(study.get("cohorts") or []),
        "subjects": meta.get("n_subjects"),
        "atlas": meta.get("atlas") or "—",
        "ROIs": len(meta.get("roi_labels") or []),
        "EEG channels": len(meta.get("channels") or []),
        "labels": ", ".join(meta.get("labels") or []),
        "folds": f"{study.get('folds', '?')} ({study.get('split', '?')}, "
        f"stratified by {study.get('stratify_label', '?')})",
        "excluded recordings": meta.get("n_excluded"),
        "build time (s)": meta.get("seconds"),
    }
    for modality, n in (meta.get("n_samples") or {}).items():
        facts[f"{modality} samples"] = n
    for kind, n in (meta.get("n_pairs") or {}).items():
        facts[f"{kind} pairs"] = n
    for name, shape in (meta.get("shapes") or {}).items():
        facts[f"shape {name}"] = " × ".join(map(str, shape))
    table = pd.DataFrame({"value": [_fmt(v) for v in facts.values()]}, index=list(facts))
    return table.rename_axis("store")


def _fold_balance(index: pd.DataFrame | None, labels: Sequence[str]) -> str:
    import matplotlib

    if index is None or "fold" not in index or "subject" not in index:
        return _missing("No fold column in index.tsv: fold balance unknown.")
    keys = [c for c in ("cohort", "subject") if c in index]
    subjects = index.drop_duplicates(keys).copy()
    subjects["fold"] = subjects["fold"].fillna("none")
    order = sorted(
        subjects["fold"].unique(), key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f)
    )
    parts = []
    if "site" in subjects:
        sites = pd.crosstab(subjects["fold"], subjects["site"].fillna("?"), margins=True)
        sites = sites.reindex([*order, "All"])
        parts.append("<h4>Subjects per fold and site</h4>" + _table(sites, index=True))
        fig, (ax,) = _figure(1, width=8, height=3)
        bottom = np.zeros(len(order))
        columns = [c for c in sites.columns if c != "All"]
        cmap = matplotlib.colormaps["tab20"]
        x = np.arange(len(order))
        for i, site in enumerate(columns):
            values = sites.loc[order, site].to_numpy(dtype=float)
            ax.bar(x, values, bottom=bottom, label=str(site), color=cmap(i % 20))
            bottom += values
        ax.set_xticks(x, order)
        ax.set(xlabel="fold", ylabel="subjects")
        if len(columns) <= 20:
            ax.legend(fontsize=7, ncols=max(1, len(columns) // 10 + 1), loc="upper left",
                      bbox_to_anchor=(1.0, 1.0))  # fmt: skip
        parts.append(_png(fig, "subjects per fold, stacked by site"))
    present = [label for label in labels if label in subjects]
    for label in present:
        values = _label_text(subjects[label])
        table = pd.crosstab(subjects["fold"], values, margins=True).reindex([*order, "All"])
        parts.append(f"<h4>Subjects per fold: {_esc(label)}</h4>" + _table(table, index=True))
    if labels and not present:
        parts.append(_missing("index.tsv has none of the store's label columns."))
    return "".join(parts)


def _pretrain_runs(results: Path) -> list[Path]:
    root = results / "pretrain"
    return sorted(p.parent for p in root.rglob("summary.json")) if root.is_dir() else []


def _section_pretraining(ctx: _Context) -> str:
    runs = _pretrain_runs(ctx.results)
    if not runs:
        return _missing("No pretraining: no summary.json under results/pretrain.")
    root = ctx.results / "pretrain"
    rows = []
    for run in runs:
        name = run.relative_to(root).as_posix()
        try:
            summary = json.loads((run / "summary.json").read_text())
        except (json.JSONDecodeError, OSError) as err:
            summary = f"summary.json unreadable: {err}"
        if not isinstance(summary, dict):
            note = summary if isinstance(summary, str) else "summary.json is not a JSON object"
            rows.append({"run": name, "note": note})
            continue
        rows.append(
            {
                "run": name,
                "wall time (s)": summary.get("seconds"),
                "device": summary.get("device"),
                "processes": summary.get("processes"),
                "pairs/s": summary.get("pairs_per_s"),
                "steps": summary.get("steps"),
                "epochs": summary.get("epochs"),
                "subjects": summary.get("subjects"),
                "best validation loss": summary.get("best_loss"),
                "final loss": summary.get("final_loss"),
                "resumed from step": summary.get("resumed_from"),
            }
        )
    parts = [_table(pd.DataFrame(rows))]
    if any(r.get("resumed from step") is not None for r in rows):
        parts.append(
            _note("A run resumed from a checkpoint reports only the time of its last part.")
        )
    parts.append("<h3>Loss curves</h3>")
    curves = []
    for run in runs:
        name = run.relative_to(root).as_posix()
        curves.append(f"<h4>{_esc(name)}</h4>" + _loss_curves(run / "metrics.csv", name))
    if len(runs) > 3:  # many scopes (one per fold): an overlay, each run's terms on demand
        parts.append(_total_overlay(runs, root))
        curves = [f"<details><summary>each run's loss terms</summary>{''.join(curves)}</details>"]
    return "".join(parts + curves)


def _total_overlay(runs: Sequence[Path], root: Path) -> str:
    """Train and validation total loss of every run, one line per run."""
    fig, axes = _figure(2, width=5.0, height=3.0)
    drawn = False
    for run in runs:
        try:
            metrics = pd.read_csv(run / "metrics.csv")
        except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError):
            continue
        if not {"step", "split", "total"} <= set(metrics.columns):
            continue
        for ax, split in zip(axes, ("train", "val"), strict=True):
            rows = metrics[(metrics["split"] == split) & metrics["total"].notna()]
            rows = _downsample(rows.sort_values("step"))
            if not rows.empty:
                ax.plot(rows["step"], rows["total"], lw=1, label=run.relative_to(root).as_posix())
                drawn = True
    if not drawn:
        return _missing("No run has total-loss values in metrics.csv.")
    for ax, title in zip(axes, ("train total loss", "validation total loss"), strict=True):
        ax.set(xlabel="step", title=title)
    axes[0].set_ylabel("loss")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig, "total loss of every pretraining run")


def _loss_curves(path: Path, name: str) -> str:
    if not path.is_file():
        return _missing("No metrics.csv in this run.")
    try:
        metrics = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        return _missing(f"metrics.csv could not be read ({err}).")
    if metrics.empty or not {"step", "split"} <= set(metrics.columns):
        return _missing("metrics.csv holds no rows.")
    terms = [t for t in LOSS_TERMS if t in metrics and metrics[t].notna().any()]
    if not terms:
        return _missing("metrics.csv holds no loss values.")
    fig, axes = _figure(len(terms), width=3.2, height=2.4)
    for ax, term in zip(axes, terms, strict=True):
        for split, style in (("train", "-"), ("val", "o-")):
            rows = metrics[(metrics["split"] == split) & metrics[term].notna()]
            rows = _downsample(rows.sort_values("step"))
            if not rows.empty:
                label = "validation" if split == "val" else split
                ax.plot(rows["step"], rows[term], style, ms=3, lw=1, label=label)
        ax.set_title(term, fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("loss")
    return _png(fig, f"pretraining loss curves: {name}")


def _section_evaluation(ctx: _Context) -> str:
    evaluation = ctx.results / "evaluation"
    parts = ["<h3>Experiment tables</h3>", _experiment_tables(ctx.results)]
    if not evaluation.is_dir():
        parts.append(_missing("No evaluation: results/evaluation is missing."))
        return "".join(parts)
    parts += ["<h3>ROC curves (test predictions of every fold, seed 0)</h3>", _roc(evaluation)]
    parts += ["<h3>AUROC per fold</h3>", _fold_dots(evaluation / "metrics.tsv")]
    parts += ["<h3>Paired differences from the reference</h3>", _paired(evaluation)]
    return "".join(parts)


def _experiment_tables(results: Path) -> str:
    folder = results / "report" / "tables"
    index = folder / "index.json"
    if index.is_file():
        try:
            entries = json.loads(index.read_text())
        except (json.JSONDecodeError, OSError) as err:
            return _missing(f"report/tables/index.json could not be read ({err}).")
        parts = []
        for entry in entries if isinstance(entries, list) else []:
            title = entry.get("title") or entry.get("name") or "table"
            parts.append(f"<h4>{_esc(title)}</h4>")
            name = str(entry.get("html", ""))
            fragment = folder / name
            if not name or Path(name).name != name or not fragment.is_file():
                parts.append(_missing(f"Table fragment {name!r} is missing."))
            else:
                parts.append(fragment.read_text())
        return "".join(parts) or _missing("report/tables/index.json lists no table.")
    text = _missing("No tables: report/tables/index.json is missing; AUROC from summary.tsv.")
    summary, note = _load(results / "evaluation" / "summary.tsv", "evaluation summary")
    if summary is None:
        return text + note
    needed = {"experiment", "model", "task", "metric", "mean ± sd"}
    if not needed <= set(summary.columns):
        return text + _missing("summary.tsv lacks columns " + ", ".join(sorted(needed)))
    auroc = summary[summary["metric"] == "auroc"]
    if auroc.empty:
        return text + _missing("summary.tsv has no AUROC rows.")
    if "scope" not in auroc:
        auroc = auroc.assign(scope="")
    table = auroc.pivot_table(
        index=["experiment", "model"],
        columns=["task", "scope"],
        values="mean ± sd",
        aggfunc="first",
    )
    return text + _table(table, index=True)


def _prediction_files(evaluation: Path) -> dict[tuple[str, str, str], list[Path]]:
    """Per (experiment, model, task), the prediction files of seed 0 (or the lowest seed)."""
    found: dict[tuple[str, str, str], dict[str, list[Path]]] = {}
    for path in evaluation.glob("*/*/*/*_predictions.tsv"):
        experiment, model, task = path.parts[-4:-1]
        match = re.search(r"seed-([^_]+)_predictions\.tsv$", path.name)
        seed = match.group(1) if match else "?"
        found.setdefault((experiment, model, task), {}).setdefault(seed, []).append(path)
    chosen = {}
    for key, seeds in sorted(found.items()):
        seed = "0" if "0" in seeds else sorted(seeds)[0]
        chosen[key] = sorted(seeds[seed])
    return chosen


def _roc(evaluation: Path) -> str:
    from sklearn.metrics import roc_auc_score, roc_curve

    files = _prediction_files(evaluation)
    if not files:
        return _missing("No *_predictions.tsv under results/evaluation.")
    notes = []
    metrics_path = evaluation / "metrics.tsv"
    if metrics_path.is_file():  # this run's experiments, not older runs' folders
        try:
            ran = list(dict.fromkeys(pd.read_csv(metrics_path, sep="\t")["experiment"]))
        except (pd.errors.EmptyDataError, pd.errors.ParserError, KeyError):
            ran = []
        files = {k: v for k, v in files.items() if not ran or k[0] in ran}
        if len({(e, m) for e, m, _ in files}) > MAX_ROC_CURVES and ran:
            files = {k: v for k, v in files.items() if k[0] == ran[0]}
            notes.append(
                f"ROC curves of experiment {ran[0]} only ({len(ran)} experiments ran; the "
                "tables give the others' numbers)."
            )
    curves: dict[str, list[tuple[str, np.ndarray, np.ndarray, float]]] = {}
    for (experiment, model, task), paths in files.items():
        label = f"{experiment} / {model}"
        try:
            table = pd.concat([_read_tsv(p) for p in paths], ignore_index=True)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
            notes.append(f"{task}, {label}: predictions unreadable ({err}).")
            continue
        if not {"subject", "y", "score"} <= set(table.columns):
            notes.append(f"{task}, {label}: predictions lack subject / y / score.")
            continue
        if "split" in table:
            table = table[table["split"] == "test"]
        if "seed" in table and (table["seed"] == "0").any():
            table = table[table["seed"] == "0"]
        keys = [c for c in ("cohort", "subject") if c in table]
        table = table.assign(y=pd.to_numeric(table["y"], errors="coerce"))
        table = table.assign(score=pd.to_numeric(table["score"], errors="coerce"))
        per_subject = table.dropna(subset=["y", "score"]).groupby(keys)[["y", "score"]].mean()
        classes = np.unique(per_subject["y"])
        if len(classes) != 2:
            notes.append(
                f"{task}, {label}: {len(classes)} class(es) among {len(per_subject)} test "
                "subjects; no ROC curve (needs a binary task)."
            )
            continue
        y = (per_subject["y"] == classes[1]).to_numpy(dtype=int)
        fpr, tpr, _ = roc_curve(y, per_subject["score"])
        if len(fpr) > MAX_CURVE_POINTS:
            grid = np.linspace(0, 1, MAX_CURVE_POINTS)
            fpr, tpr = grid, np.interp(grid, fpr, tpr)
        auc = roc_auc_score(y, per_subject["score"])
        curves.setdefault(task, []).append((label, fpr, tpr, auc))
    parts = []
    if curves:
        fig, axes = _figure(len(curves), width=4.2, height=4.2)
        for ax, (task, lines) in zip(axes, sorted(curves.items()), strict=True):
            for label, fpr, tpr, auc in lines:
                ax.plot(fpr, tpr, lw=1.2, label=f"{label} ({auc:.3f})")
            ax.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
            ax.set(xlabel="false positive rate", title=task)
            ax.set_aspect("equal")
            ax.legend(fontsize=7, loc="lower right", title="AUROC, pooled folds", title_fontsize=7)
        axes[0].set_ylabel("true positive rate")
        parts.append(_png(fig, "ROC curves per task"))
    parts += [_missing(n) for n in notes]
    return "".join(parts) or _missing("No prediction to draw.")


def _fold_dots(path: Path) -> str:
    metrics, note = _load(path, "per-fold metrics table")
    if metrics is None:
        return note
    needed = {"experiment", "model", "task", "fold", "metric", "value"}
    if not needed <= set(metrics.columns):
        return _missing("metrics.tsv lacks columns " + ", ".join(sorted(needed)))
    auroc = metrics[metrics["metric"] == "auroc"].copy()
    if auroc.empty:
        return _missing("metrics.tsv has no AUROC rows.")
    auroc["value"] = pd.to_numeric(auroc["value"], errors="coerce")
    auroc["label"] = auroc["experiment"].astype(str) + " / " + auroc["model"].astype(str)
    parts = []
    tasks = sorted(auroc["task"].dropna().unique())
    drawn = [t for t in tasks if auroc.loc[auroc["task"] == t, "value"].notna().any()]
    if drawn:
        heights = [auroc.loc[auroc["task"] == t, "label"].nunique() for t in drawn]
        fig, axes = _figure(len(drawn), width=4.6, height=max(2.0, 0.32 * max(heights) + 1.0))
        for ax, task in zip(axes, drawn, strict=True):
            rows = auroc[(auroc["task"] == task) & auroc["value"].notna()]
            labels = sorted(rows["label"].unique())
            position = {label: i for i, label in enumerate(labels)}
            folds = rows[rows["fold"] != "pooled"]
            pooled = rows[rows["fold"] == "pooled"]
            jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(folds))
            ax.scatter(folds["value"], folds["label"].map(position) + jitter, s=12,
                       alpha=0.6, color="#3b75af", label="fold × seed")  # fmt: skip
            if not pooled.empty:
                ax.scatter(pooled["value"], pooled["label"].map(position), marker="D", s=28,
                           color="#d0542c", label="pooled folds")  # fmt: skip
            ax.axvline(0.5, color="grey", lw=0.8, ls=":")
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
            ax.set(xlabel="AUROC", title=task, ylim=(-0.6, len(labels) - 0.4))
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=2, fontsize=8)
        parts.append(_png(fig, "AUROC per fold, per model and task"))
    for task in tasks:
        if task not in drawn:
            parts.append(_missing(f"{task}: every AUROC is NaN; see the notes below."))
    nan_rows = auroc[auroc["value"].isna()]
    if not nan_rows.empty:
        keep = [c for c in ("experiment", "model", "task", "fold", "seed", "n_subjects", "note")]
        keep = [c for c in keep if c in nan_rows]

        reasons = (
            nan_rows["note"].fillna("").astype(str).map(short_reason)
            if "note" in nan_rows
            else None
        )
        parts.append(f"<h4>Folds without an AUROC ({len(nan_rows)})</h4>")
        if reasons is not None:
            counts = reasons.replace("", "no reason recorded").value_counts()
            parts.append(_table(counts.rename_axis("reason").reset_index(name="folds")))
        parts.append(
            f"<details><summary>{len(nan_rows)} folds</summary>{_table(nan_rows[keep])}</details>"
        )
    return "".join(parts)


def _paired(evaluation: Path) -> str:
    paired, note = _load(evaluation / "paired.tsv", "paired comparison")
    if paired is None:
        return note
    needed = {"experiment", "task", "model", "reference"}
    if paired.empty or not needed <= set(paired.columns):
        return _missing("paired.tsv holds no comparison.")
    for column in ("delta_pooled", "delta_mean", "ci_low", "ci_high"):
        paired[column] = pd.to_numeric(paired.get(column), errors="coerce")
    centre = paired["delta_pooled"].fillna(paired["delta_mean"])
    labels = (
        paired["experiment"].astype(str)
        + " · "
        + paired["task"].astype(str)
        + ": "
        + paired["model"].astype(str)
        + " − "
        + paired["reference"].astype(str)
    )
    if "reference_experiment" in paired:
        other = paired["reference_experiment"].notna() & (
            paired["reference_experiment"] != paired["experiment"]
        )
        labels = labels.where(
            ~other, labels + " (" + paired["reference_experiment"].astype(str) + ")"
        )
    parts = []
    ok = centre.notna()
    if ok.any():
        n = int(ok.sum())
        fig, (ax,) = _figure(1, width=8, height=max(2.0, 0.3 * n + 1.0))
        y = np.arange(n)[::-1]
        low = (centre - paired["ci_low"]).where(paired["ci_low"].notna(), 0)[ok]
        high = (paired["ci_high"] - centre).where(paired["ci_high"].notna(), 0)[ok]
        ax.errorbar(centre[ok], y, xerr=[low, high], fmt="o", ms=4, capsize=3, color="#1f3b57")
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax.set_yticks(y, labels[ok], fontsize=7)
        ax.set_xlabel("AUROC difference (pooled folds, 95% bootstrap interval)")
        parts.append(_png(fig, "forest plot of paired AUROC differences"))
    else:
        parts.append(_missing("Every paired difference is NaN: no forest plot."))
    columns = [c for c in PAIRED_COLUMNS if c not in ("n_subjects", "n_bootstrap")]
    parts.append(_table(paired[[c for c in columns if c in paired]]))
    return "".join(parts)


def _section_provenance(ctx: _Context) -> str:
    from mcsp import provenance

    path = ctx.results / "provenance.json"
    parts = []
    record: dict[str, Any] | None = None
    if path.is_file():
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError) as err:
            parts.append(_missing(f"provenance.json could not be read ({err})."))
    else:
        parts.append(_missing("No provenance.json: showing the environment building this page."))
    if record is None:
        record = provenance.collect()
        parts.append(_note("The config and the command line of the run are unknown."))
    else:
        parts.append(_note(f"From {path.name}."))
    git = record.get("git") or {}
    machine = record.get("machine") or {}
    memory = machine.get("memory_bytes")
    facts = {
        "git commit": git.get("commit") or "not a git checkout",
        "uncommitted changes": {True: "yes", False: "no"}.get(git.get("dirty"), "unknown"),
        "time (UTC)": record.get("time_utc"),
        "platform": machine.get("platform"),
        "hostname": machine.get("hostname"),
        "CPUs": machine.get("cpu_count"),
        "memory (GiB)": f"{memory / 2**30:.1f}" if isinstance(memory, int | float) else None,
        "CUDA devices": ", ".join(machine.get("cuda_devices") or []) or "none reported",
    }
    table = pd.DataFrame({"value": [_fmt(v) for v in facts.values()]}, index=list(facts))
    parts.append(_table(table.rename_axis("run"), index=True))
    versions = record.get("versions") or {}
    if versions:
        frame = pd.DataFrame(
            {"version": [v or "not installed" for v in versions.values()]}, index=list(versions)
        )
        parts.append("<h3>Versions</h3>" + _table(frame.rename_axis("package"), index=True))
    argv = record.get("argv")
    if argv:
        parts.append("<h3>Command line</h3><pre>" + _esc(" ".join(map(str, argv))) + "</pre>")
    config = record.get("config")
    if config is not None:
        parts.append(
            "<details><summary>Config</summary><pre>" + _esc(_as_yaml(config)) + "</pre></details>"
        )
    return "".join(parts)


def _as_yaml(value: Any) -> str:
    try:
        import yaml

        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
    except Exception:  # noqa: BLE001 - JSON is shown when YAML cannot represent the config
        return json.dumps(value, indent=2, default=str)


BUILDERS: dict[str, Callable[[_Context], str]] = {
    "cohorts": _section_cohorts,
    "fmri-qc": _section_fmri,
    "eeg-qc": _section_eeg,
    "store": _section_store,
    "pretraining": _section_pretraining,
    "evaluation": _section_evaluation,
    "provenance": _section_provenance,
}


def _page(results: Path, sections: Iterable[tuple[str, str, str]]) -> str:
    built = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = list(sections)
    nav = "".join(f'<a href="#{sid}">{_esc(title)}</a>' for sid, title, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{_esc(title)}</h2>{content}</section>'
        for sid, title, content in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mcsp report: {_esc(results.name)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>mcsp report: {_esc(results.name)}</h1>"
        f"<p>Results folder {_esc(results)}</p><p>Built {built}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )


def build_report(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of a results directory.

    Args:
        results_dir: the workflow's ``results_dir``.
        out: the HTML file (default ``<results_dir>/report/index.html``); links to per-recording
            pages are relative to its folder.

    Returns:
        The path written (atomically).
    """
    results = Path(results_dir)
    out = Path(out) if out is not None else results / "report" / "index.html"
    ctx = _Context(results=results, out_dir=out.parent)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for sid, title in SECTIONS:
        try:
            content = BUILDERS[sid](ctx)
        except Exception as err:  # noqa: BLE001 - one odd input must not cost the whole page
            log.exception("report section %s failed", sid)
            content = _missing(f"This section could not be built: {type(err).__name__}: {err}")
        sections.append((sid, title, content))
    path = write_text(out, _page(results, sections))
    log.info("report written to %s (%.1f MB)", path, path.stat().st_size / 2**20)
    return path
