"""The paper's tables from an evaluation's metrics (``metrics.tsv``) and paired differences
(``paired.tsv``, :mod:`mcsp.compare`), as a tidy TSV and as Markdown, LaTeX and HTML.

A table has one row per model (or variant) and one column per task. A cell holds the mean ± sd of
the metric over the per-fold values of every fold × seed (the ``pooled`` rows, whose value comes
from the pooled predictions, are left out) and, below or beside it, the paired difference Δ to the
reference model with its 95% interval.

``n_subjects`` of a cell is the number of test subjects scored once: the test folds partition the
subjects and are the same for every seed, so the sum over folds of one seed's fold sizes counts
each subject once (summing over seeds would count them once per seed). A fold's size is the largest
``n_subjects`` of its rows, since a failed job records 0 and all metrics of one job share the count;
taking it over every seed of the fold equals seed 0's size when seed 0 ran and still counts the fold
when only another seed did.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mcsp.compare import ENSEMBLE_SUFFIX
from mcsp.io import write_text

TABLE_COLUMNS = [
    "label",
    "experiment",
    "model",
    "task",
    "mean",
    "sd",
    "n",
    "n_missing",
    "n_subjects",
    "delta",
    "delta_sd",
    "ci_low",
    "ci_high",
    "best",
    "note",
    "n_folds",
    "n_seeds",
    "delta_pooled",
    "folds_better",
    "is_reference",
    "delta_source",
]
METRIC_NAMES = {
    "auroc": "AUROC",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
}
LOWER_IS_BETTER = frozenset({"brier", "log_loss", "ece"})
NO_TASK = "—"
_TABLE_KEYS = {"title", "caption", "rows", "tasks", "metric", "reference"}
_ROW_KEYS = {"experiment", "model", "label"}
_METRICS_COLUMNS = [
    "experiment",
    "model",
    "task",
    "fold",
    "seed",
    "metric",
    "value",
    "n_subjects",
    "note",
]


def table_specs(evaluate: Mapping, report: Mapping | None) -> dict[str, dict]:
    """The tables to build, by name, each normalised to ``name, title, caption, rows, tasks,
    metric, reference`` (rows: ``experiment, model, label, order``).

    Args:
        evaluate: the config's ``evaluate`` block (``experiments``, ``tasks``, ``reference``,
            ``reference_experiment``, ``blends``).
        report: the config's ``report`` block; its ``tables`` (``{NAME: {title, caption, rows,
            tasks, metric, reference}}``) are used as given. When it has none, one table per
            experiment of ``evaluate.experiments`` is made: its models present in the metrics
            (with their seed ensembles and the blends), against ``evaluate.reference``.

    A row naming an experiment only (``model`` omitted) stands for every model of that experiment
    found in the metrics; :func:`resolve_rows` expands it when the table is built.

    Raises:
        ValueError: a table or row with an unknown key, a table without rows, or a row without
            ``experiment``.
    """
    experiments = dict(evaluate.get("experiments") or {})
    blends = list((evaluate.get("blends") or {}).keys())
    tables = dict((report or {}).get("tables") or {})
    reference = {
        "experiment": evaluate.get("reference_experiment"),
        "model": evaluate.get("reference", "fc_logreg"),
    }
    if not tables:
        return {
            name: {
                "name": name,
                "title": name,
                "caption": "",
                "rows": [
                    {
                        "experiment": name,
                        "model": None,
                        "label": None,
                        "order": [*((spec or {}).get("models") or []), *blends],
                    }
                ],
                "tasks": (spec or {}).get("tasks") or evaluate.get("tasks") or None,
                "metric": "auroc",
                "reference": dict(reference),
            }
            for name, spec in experiments.items()
        }
    specs = {}
    for name, table in tables.items():
        table = dict(table or {})
        unknown = sorted(set(table) - _TABLE_KEYS)
        if unknown:
            raise ValueError(
                f"report.tables.{name}: unknown keys {unknown}; use {sorted(_TABLE_KEYS)}."
            )
        if not table.get("rows"):
            raise ValueError(f"report.tables.{name}.rows: give one or more rows, got none.")
        rows = []
        for i, row in enumerate(table["rows"]):
            row = dict(row or {})
            bad = sorted(set(row) - _ROW_KEYS)
            if bad or not row.get("experiment"):
                raise ValueError(
                    f"report.tables.{name}.rows[{i}]: give experiment (and optionally model, "
                    f"label), got {row}."
                )
            experiment = str(row["experiment"])
            models = (experiments.get(experiment) or {}).get("models") or []
            rows.append(
                {
                    "experiment": experiment,
                    "model": row.get("model"),
                    "label": row.get("label"),
                    "order": [*models, *blends],
                }
            )
        ref = table.get("reference", reference)
        specs[name] = {
            "name": name,
            "title": table.get("title") or name,
            "caption": table.get("caption") or "",
            "rows": rows,
            "tasks": table.get("tasks") or None,
            "metric": table.get("metric") or "auroc",
            "reference": None
            if ref is None
            else {"experiment": ref.get("experiment"), "model": ref["model"]},
        }
    return specs


def resolve_rows(spec: Mapping, metrics: pd.DataFrame) -> list[dict]:
    """The table's rows with experiment-only rows expanded to the experiment's models in
    ``metrics`` (listed models first, each followed by its seed ensemble, then the others in
    the order of the metrics). Labels default to the model (``model (experiment)`` when the table
    spans several experiments); an experiment with no metrics keeps one row, all n/a."""
    expanded = []
    for row in spec.get("rows") or []:
        experiment = row["experiment"]
        if row.get("model"):
            expanded.append((row, experiment, str(row["model"]), row.get("label")))
            continue
        found = list(dict.fromkeys(metrics.loc[metrics["experiment"] == experiment, "model"]))
        ordered = [
            m
            for listed in row.get("order") or []
            for m in (listed, listed + ENSEMBLE_SUFFIX)
            if m in found
        ]
        models = list(dict.fromkeys([*ordered, *found]))
        if not models:
            expanded.append((row, experiment, "", row.get("label") or experiment))
        for model in models:
            label = f"{row['label']}: {model}" if row.get("label") else None
            expanded.append((row, experiment, model, label))
    several = len({e for _, e, _, _ in expanded}) > 1
    return [
        {
            "experiment": experiment,
            "model": model,
            "label": label or (f"{model} ({experiment})" if several else model),
        }
        for _, experiment, model, label in expanded
    ]


def build_table(
    metrics: pd.DataFrame, paired: pd.DataFrame, spec: Mapping, context: Mapping
) -> pd.DataFrame:
    """One tidy row per table row and task (columns :data:`TABLE_COLUMNS`).

    ``mean``/``sd`` are over the per-fold values of every fold × seed (NaN values left out and
    counted in ``n_missing``, ``n`` the values used); ``n_subjects`` is the test subjects scored
    once (module docstring). The reference of a row is ``spec.reference.model`` (its seed
    ensemble for a ``+ens`` row) from ``spec.reference.experiment``, or, when that is null, from
    the row's experiment if it ran there, else the first experiment that ran it for the task.
    ``delta`` (with ``delta_sd``, ``ci_low``, ``ci_high``, ``folds_better``) is taken from
    ``paired.tsv`` when it holds the row's experiment, task, model and that reference
    (``delta_source`` ``paired``); otherwise it is computed here as the per-fold difference on the
    folds and seeds both sides scored (``computed``, no interval); ``delta_pooled`` (paired.tsv
    only) is the pooled-prediction difference that ``ci_low`` … ``ci_high`` bound. ``best``
    marks the best mean per task, ties at the shown precision all best, when two or more rows
    have a value. ``n_folds``/``n_seeds`` count the folds and seeds with a value.

    Args:
        metrics: ``metrics.tsv`` rows.
        paired: ``paired.tsv`` rows (may be empty).
        spec: one table of :func:`table_specs`.
        context: ``not_applicable`` (optional): ``{"experiment/model": reason}`` or
            ``{"model": reason}``, the note of a model that produced no metrics (default: "not
            applicable: no metrics for this model").
    """
    metrics = _clean_metrics(metrics)
    rows = resolve_rows(spec, metrics)
    metric = spec.get("metric") or "auroc"
    tasks = list(spec.get("tasks") or [])
    if not tasks:
        keys = {(r["experiment"], r["model"]) for r in rows}
        mask = [
            (e, m) in keys for e, m in zip(metrics["experiment"], metrics["model"], strict=True)
        ]
        tasks = list(dict.fromkeys(metrics.loc[mask, "task"])) or [NO_TASK]
    reasons = dict(context.get("not_applicable") or {})
    out = []
    for row in rows:
        experiment, model = row["experiment"], row["model"]
        of_model = metrics[(metrics["experiment"] == experiment) & (metrics["model"] == model)]
        for task in tasks:
            cell = _cell(of_model[of_model["task"] == task], metric)
            if cell["n"] == 0 and not cell["note"]:
                reason = reasons.get(f"{experiment}/{model}") or reasons.get(model)
                if not model:
                    cell["note"] = f"no metrics for experiment {experiment}"
                elif reason:
                    cell["note"] = str(reason)
                elif cell["n_missing"]:
                    cell["note"] = "no values (NaN)"
                elif of_model.empty:
                    cell["note"] = "not applicable: no metrics for this model"
                else:
                    cell["note"] = "not run for this task"
            delta = _delta(metrics, paired, spec.get("reference"), experiment, model, task, metric)
            out.append({**row, "task": task, **cell, **delta})
    table = pd.DataFrame(out, columns=TABLE_COLUMNS)
    table["best"] = _best(table, metric)
    return table


def footnote(table: pd.DataFrame, spec: Mapping, context: Mapping) -> str:
    """The table's footnote: folds, seeds, pretraining scope, metric, reference and how to read
    ± and Δ. Folds and seeds are those of the table's values (several joined by ``/``), else
    ``context["folds"]``/``context["seeds"]``; ``context["pretrain_scope"]`` is a text or
    ``{experiment: text}``."""
    metric = _metric_name(spec.get("metric") or "auroc")
    scored = table[table["n"] > 0]
    single = scored[~scored["model"].astype(str).str.endswith(ENSEMBLE_SUFFIX)]
    # the design: the study's folds; the seeds of the rows' runs (an experiment may set fewer)
    folds = context.get("folds") or _counts(scored["n_folds"])
    seeds = int(single["n_seeds"].max()) if len(single) else context.get("seeds")
    design = " × ".join(
        part
        for part in (
            f"{folds} subject-level test folds" if folds is not None else "",
            f"{seeds} seed{'' if str(seeds) == '1' else 's'}" if seeds is not None else "",
        )
        if part
    )
    parts = [
        f"{metric}, mean ± sd over the per-fold values of folds × seeds"
        + (f" ({design})" if design else "")
        + "; n subjects: test subjects, each scored once."
    ]
    scope = context.get("pretrain_scope")
    if isinstance(scope, Mapping):
        experiments = list(dict.fromkeys(table["experiment"]))
        scope = "; ".join(f"{e}: {scope[e]}" for e in experiments if scope.get(e))
    if scope:
        parts.append(f"Pretraining: {scope}.")
    ref = spec.get("reference")
    if ref and not table["delta_source"].astype(bool).any():
        parts.append(f"Reference {ref['model']}: no paired values.")
    elif ref:
        where = f" of experiment {ref['experiment']}" if ref.get("experiment") else ""
        parts.append(
            f"Reference: {ref['model']}{where} (seed ensembles against "
            f"{ref['model']}{ENSEMBLE_SUFFIX}); ref. marks it. Δ: paired difference to the "
            "reference on the same folds and seeds, mean ± sd over folds × seeds; pooled: the "
            "difference of the pooled test predictions with its 95% subject-bootstrap interval "
            "[..], when available."
        )
    better = "lowest" if (spec.get("metric") or "auroc") in LOWER_IS_BETTER else "highest"
    parts.append(f"Bold: the {better} mean of each task (ties all bold); n/a: no values.")
    return " ".join(parts)


def to_markdown(table: pd.DataFrame, spec: Mapping, footnote: str) -> str:
    """A pipe table (a Δ column after each task when there is a reference, a Note column when a
    cell has a note), its title and caption above and the footnote below."""
    tasks, labels, with_delta, with_note = _layout(table)

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    header = ["Model"]
    for task in tasks:
        header += [task, f"Δ {task}"] if with_delta else [task]
    header += ["Note"] if with_note else []
    body = [_subjects_row(table, tasks, with_delta, with_note)]
    for label in labels:
        line = [label]
        for task in tasks:
            cell = _row(table, label, task)
            value = _value_text(cell)
            line.append(f"**{value}**" if cell["best"] else value)
            if with_delta:
                line.append(_delta_text(cell))
        if with_note:
            line.append(_row_note(table, label))
        body.append(line)
    lines = [
        "| " + " | ".join(esc(c) for c in header) + " |",
        "|" + "|".join(["---", *([":---:"] * (len(header) - 1))]) + "|",
    ]
    lines += ["| " + " | ".join(esc(c) for c in line) + " |" for line in body]
    title = f"**{_caption(spec)}**"
    return f"{title}\n\n" + "\n".join(lines) + f"\n\n{footnote}\n"


def to_latex(table: pd.DataFrame, spec: Mapping, footnote: str) -> str:
    """A ``table`` environment with a booktabs ``tabular`` (needs only ``booktabs``), the
    caption, ``\\label{tab:NAME}`` and the footnote as a ``\\footnotesize`` paragraph."""
    tasks, labels, with_delta, with_note = _layout(table)
    header = ["Model"]
    for task in tasks:
        header += [task, f"Δ {task}"] if with_delta else [task]
    columns = "l" + "c" * (len(header) - 1) + (r"p{0.3\linewidth}" if with_note else "")
    header += ["Note"] if with_note else []
    body = [_subjects_row(table, tasks, with_delta, with_note)]
    bold = []
    for label in labels:
        line, marks = [label], [False]
        for task in tasks:
            cell = _row(table, label, task)
            line.append(_value_text(cell))
            marks.append(bool(cell["best"]))
            if with_delta:
                line.append(_delta_text(cell))
                marks.append(False)
        if with_note:
            line.append(_row_note(table, label))
            marks.append(False)
        body.append(line)
        bold.append(marks)
    bold.insert(0, [False] * len(header))

    def render(line: Sequence[str], marks: Sequence[bool]) -> str:
        cells = [
            rf"\textbf{{{latex_escape(c)}}}" if b else latex_escape(c)
            for c, b in zip(line, marks, strict=True)
        ]
        return " & ".join(cells) + r" \\"

    name = spec.get("name") or spec.get("title") or "table"
    lines = [
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{latex_escape(_caption(spec))}}}",
        rf"\label{{tab:{_label_key(str(name))}}}",
        rf"\begin{{tabular}}{{{columns}}}",
        r"\toprule",
        render(header, [False] * len(header)),
        r"\midrule",
        render(body[0], bold[0]),
        r"\midrule",
        *(render(line, marks) for line, marks in zip(body[1:], bold[1:], strict=True)),
        r"\bottomrule",
        r"\end{tabular}",
        rf"\par\footnotesize {latex_escape(footnote)}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def to_html(table: pd.DataFrame, spec: Mapping, footnote: str) -> str:
    """A ``<table class="mcsp-table">`` fragment: caption, a head row of tasks, the n subjects
    row and one row per model (best mean in ``<b>``, Δ on a second line), the footnote in
    ``<tfoot>``."""
    tasks, labels, with_delta, with_note = _layout(table)
    e = html.escape
    n_columns = 1 + len(tasks) + int(with_note)
    head = "".join(f'<th scope="col">{e(t)}</th>' for t in ["Model", *tasks])
    head += '<th scope="col">Note</th>' if with_note else ""
    subjects = _subjects_row(table, tasks, False, with_note)
    first = f'<th scope="row">{e(subjects[0])}</th>'
    rest = "".join(f"<td>{e(c)}</td>" for c in subjects[1:])
    body = [f'<tr class="n-subjects">{first}{rest}</tr>']
    for label in labels:
        cells = [f'<th scope="row">{e(label)}</th>']
        for task in tasks:
            cell = _row(table, label, task)
            value = e(_value_text(cell))
            value = f"<b>{value}</b>" if cell["best"] else value
            delta = _delta_text(cell) if with_delta else ""
            if delta:
                value += f'<br><span class="delta">{e(delta)}</span>'
            cells.append(f"<td>{value}</td>")
        if with_note:
            cells.append(f'<td class="note">{e(_row_note(table, label))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<table class="mcsp-table">\n'
        f"<caption>{e(_caption(spec))}</caption>\n"
        f"<thead><tr>{head}</tr></thead>\n"
        "<tbody>\n" + "\n".join(body) + "\n</tbody>\n"
        f'<tfoot><tr><td colspan="{n_columns}">{e(footnote)}</td></tr></tfoot>\n'
        "</table>\n"
    )


def write_tables(
    metrics_tsv: str | Path,
    paired_tsv: str | Path,
    out_dir: str | Path,
    evaluate: Mapping,
    report: Mapping | None,
    context: Mapping,
) -> list[dict]:
    """Write ``<NAME>.tsv`` (the tidy table), ``.md``, ``.tex`` and ``.html`` of every table of
    :func:`table_specs` and ``index.json`` (``[{name, title, html, tsv, md, tex}]`` in spec
    order), each atomically. A missing or empty metrics or paired file gives all-n/a tables.

    Returns:
        The index list.
    """
    out_dir = Path(out_dir)
    metrics = _read_tsv(metrics_tsv, _METRICS_COLUMNS)
    paired = _read_tsv(paired_tsv, [])
    index = []
    for name, spec in table_specs(evaluate, report).items():
        table = build_table(metrics, paired, spec, context)
        note = footnote(table, spec, context)
        files = {ext: f"{name}.{ext}" for ext in ("html", "tsv", "md", "tex")}
        write_text(out_dir / files["tsv"], table.to_csv(sep="\t", index=False))
        write_text(out_dir / files["md"], to_markdown(table, spec, note))
        write_text(out_dir / files["tex"], to_latex(table, spec, note))
        write_text(out_dir / files["html"], to_html(table, spec, note))
        index.append({"name": name, "title": spec["title"], **files})
    write_text(out_dir / "index.json", json.dumps(index, indent=2) + "\n")
    return index


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "−": r"$-$",
    "—": "---",
    "–": "--",
    "…": r"\ldots{}",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
}


def latex_escape(text: str) -> str:
    """``text`` safe in LaTeX text mode: specials escaped, ± Δ × − as math."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def _read_tsv(path: str | Path, columns: list[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame(columns=columns)
    return pd.read_csv(path, sep="\t", dtype={"fold": str, "seed": str})


def _clean_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    metrics = metrics.copy()
    for column in _METRICS_COLUMNS:
        if column not in metrics.columns:
            metrics[column] = np.nan
    for column in ("experiment", "model", "task", "metric", "fold", "seed"):
        metrics[column] = metrics[column].astype(object).where(metrics[column].notna(), "")
        metrics[column] = metrics[column].astype(str)
    metrics["value"] = pd.to_numeric(metrics["value"], errors="coerce")
    metrics["n_subjects"] = pd.to_numeric(metrics["n_subjects"], errors="coerce")
    metrics["note"] = metrics["note"].astype(object).where(metrics["note"].notna(), "")
    metrics["note"] = metrics["note"].astype(str)
    return metrics[metrics["fold"] != "pooled"]


def _cell(rows: pd.DataFrame, metric: str) -> dict[str, Any]:
    values = rows.loc[rows["metric"] == metric, "value"]
    n = int(values.notna().sum())
    missing = int(values.isna().sum())
    notes = rows.loc[(rows["metric"] == metric) & rows["value"].isna(), "note"]
    reasons = pd.Series([short_reason(s) for s in notes.fillna("") if s.strip()])
    note = "; ".join(
        f"{reason} ({k} fold{'s' if k > 1 else ''})" for reason, k in reasons.value_counts().items()
    )
    if missing and n:
        note = f"{missing} of {n + missing} values missing" + (f": {note}" if note else "")
    sizes = rows.groupby("fold")["n_subjects"].max()
    scored = rows[(rows["metric"] == metric) & rows["value"].notna()]
    return {
        "mean": float(values.mean()) if n else math.nan,
        "sd": float(values.std(ddof=1)) if n > 1 else math.nan,
        "n": n,
        "n_missing": missing,
        "n_subjects": int(sizes.fillna(0).sum()) if len(sizes) else 0,
        "note": note,
        "n_folds": int(scored["fold"].nunique()),
        "n_seeds": int(scored["seed"].nunique()),
    }


def short_reason(note: str) -> str:
    """A job's note without what varies by fold (its keys, counts, class) and without the
    advice, so that one cause reads once per cell."""
    text = re.sub(r"^.*?test fold \d+: ", "", note.strip())
    text = re.sub(r" \(\d+\)", "", text)
    text = re.sub(r"class \S+ only", "one class", text)
    text = re.sub(r" \(the pooled-folds row scores it\)", "", text)
    text = re.sub(r"[;:,] use fewer folds or more subjects\.?$", "", text)
    return text.strip().rstrip(".")


def _reference_for(
    metrics: pd.DataFrame, reference: Mapping | None, experiment: str, model: str, task: str
) -> tuple[str, str] | None:
    if not reference:
        return None
    ref = str(reference["model"])
    if model.endswith(ENSEMBLE_SUFFIX) and not ref.endswith(ENSEMBLE_SUFFIX):
        ref += ENSEMBLE_SUFFIX
    if reference.get("experiment"):
        return str(reference["experiment"]), ref
    ran = metrics.loc[(metrics["model"] == ref) & (metrics["task"] == task), "experiment"]
    if experiment in set(ran):
        return experiment, ref
    return (str(ran.iloc[0]), ref) if len(ran) else None


def _delta(
    metrics: pd.DataFrame,
    paired: pd.DataFrame,
    reference: Mapping | None,
    experiment: str,
    model: str,
    task: str,
    metric: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "delta": math.nan,
        "delta_sd": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "delta_pooled": math.nan,
        "folds_better": pd.NA,
        "is_reference": False,
        "delta_source": "",
    }
    ref = _reference_for(metrics, reference, experiment, model, task)
    if ref is None or not model:
        return out
    if ref == (experiment, model):
        return {**out, "is_reference": True, "delta_source": "reference"}
    if metric == "auroc" and not paired.empty:
        match = paired[
            (paired["experiment"].astype(str) == experiment)
            & (paired["task"].astype(str) == task)
            & (paired["model"].astype(str) == model)
            & (paired["reference"].astype(str) == ref[1])
            & (paired["reference_experiment"].astype(str) == ref[0])
        ]
        if len(match):
            hit = match.iloc[0]
            return {
                **out,
                "delta": float(hit["delta_mean"]),
                "delta_sd": float(hit["delta_sd"]),
                "ci_low": float(hit["ci_low"]),
                "ci_high": float(hit["ci_high"]),
                "delta_pooled": float(hit["delta_pooled"]),
                "folds_better": int(hit["folds_better"]),
                "delta_source": "paired",
            }

    def folds(e: str, m: str) -> pd.Series:
        rows = metrics[
            (metrics["experiment"] == e)
            & (metrics["model"] == m)
            & (metrics["task"] == task)
            & (metrics["metric"] == metric)
        ]
        return rows.set_index(["fold", "seed"])["value"].groupby(level=[0, 1]).mean()

    both = pd.concat({"model": folds(experiment, model), "ref": folds(*ref)}, axis=1)
    both = both.dropna()
    if both.empty:
        return out
    differences = both["model"] - both["ref"]
    per_fold = differences.groupby(level=0).mean()
    return {
        **out,
        "delta": float(differences.mean()),
        "delta_sd": float(differences.std(ddof=1)) if len(differences) > 1 else math.nan,
        "folds_better": int((per_fold > 0).sum()),
        "delta_source": "computed",
    }


def _best(table: pd.DataFrame, metric: str) -> pd.Series:
    shown = table["mean"].astype(float).round(3)
    by_task = shown.groupby(table["task"])
    top = by_task.transform("min" if metric in LOWER_IS_BETTER else "max")
    rivals = shown.notna().groupby(table["task"]).transform("sum")
    return (shown == top) & shown.notna() & (rivals >= 2)


def _counts(values: pd.Series) -> str:
    found = sorted({int(v) for v in values if v})
    return "/".join(str(v) for v in found)


def _metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def _caption(spec: Mapping) -> str:
    title = str(spec.get("title") or spec.get("name") or "")
    caption = str(spec.get("caption") or "")
    if not caption:
        return title
    return f"{title.rstrip('.')}. {caption}" if title else caption


def _label_key(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_:" else "-" for ch in name)


def _num(x: float) -> str:
    return f"{x:.3f}".replace("-", "−")


def _layout(table: pd.DataFrame) -> tuple[list[str], list[str], bool, bool]:
    tasks = list(dict.fromkeys(table["task"]))
    labels = list(dict.fromkeys(table["label"]))
    with_delta = bool(
        table["is_reference"].astype(bool).any() or table["delta_source"].astype(bool).any()
    )
    with_note = bool((table["note"].fillna("").astype(str) != "").any())
    return tasks, labels, with_delta, with_note


def _row(table: pd.DataFrame, label: str, task: str) -> pd.Series:
    return table[(table["label"] == label) & (table["task"] == task)].iloc[0]


def _value_text(cell: pd.Series) -> str:
    if cell["n"] == 0 or pd.isna(cell["mean"]):
        return "n/a"
    if pd.isna(cell["sd"]):
        return _num(cell["mean"])
    return f"{_num(cell['mean'])} ± {_num(cell['sd'])}"


def _delta_text(cell: pd.Series) -> str:
    if cell["is_reference"]:
        return "ref."
    if not cell["delta_source"]:
        return ""
    if pd.isna(cell["delta"]):
        return "Δ n/a"
    text = f"Δ {_num(cell['delta'])}"
    if pd.notna(cell["delta_sd"]):
        text += f" ± {_num(cell['delta_sd'])}"
    if pd.notna(cell["ci_low"]) and pd.notna(cell["ci_high"]) and pd.notna(cell["delta_pooled"]):
        text += (
            f"; pooled {_num(cell['delta_pooled'])} [{_num(cell['ci_low'])}, "
            f"{_num(cell['ci_high'])}]"
        )
    return text


def _row_note(table: pd.DataFrame, label: str) -> str:
    rows = table[table["label"] == label]
    notes = [(t, str(n)) for t, n in zip(rows["task"], rows["note"].fillna(""), strict=True) if n]
    if len({n for _, n in notes}) == 1 and len(notes) == len(rows):
        return notes[0][1]
    return "; ".join(f"{t}: {n}" for t, n in notes)


def _subjects_row(
    table: pd.DataFrame, tasks: Sequence[str], with_delta: bool, with_note: bool
) -> list[str]:
    line = ["n subjects"]
    for task in tasks:
        n = table.loc[table["task"] == task, "n_subjects"].max()
        line.append(str(int(n)) if pd.notna(n) and n else "n/a")
        line += [""] if with_delta else []
    line += [""] if with_note else []
    return line
