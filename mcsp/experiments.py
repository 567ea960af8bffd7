"""Evaluation jobs: one (experiment, model, task, fold, seed) per job, merged into tidy tables.

A job fine-tunes MCSP (``mcsp`` full, ``mcsp_linear``, ``mcsp_scratch``) or fits a baseline of
:mod:`mcsp.baselines` on the training folds, selects on the validation fold and scores the test
fold; its predictions are averaged per subject before the metrics.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mcsp.baselines import BASELINES, run_baseline
from mcsp.compare import ENSEMBLE_SUFFIX, paired_comparison
from mcsp.config import schema_defaults
from mcsp.evaluate import (
    KEYS,
    METRICS,
    binary_metrics,
    score_columns,
    subject_scores,
    summarise,
    tidy_metrics,
)
from mcsp.exceptions import McspError
from mcsp.finetune import finetune
from mcsp.io import atomic_output, write_text
from mcsp.plan import (
    MCSP_MODELS,
    job_settings,
)

log = logging.getLogger(__name__)

MODELS = (*MCSP_MODELS, *BASELINES)
PREDICTION_COLUMNS = ["cohort", "subject", "sample_id", "y", "score", "split"]


def run_job(
    store_dir: str | Path,
    model: str,
    task: str,
    fold: int,
    seed: int,
    config: Mapping[str, Any],
    experiment: str = "main",
    pretrained: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions and tidy metrics of one evaluation job.

    Args:
        store_dir: the dataset store.
        model: ``mcsp``, ``mcsp_linear``, ``mcsp_scratch`` or a baseline name.
        task: label column.
        fold: test fold.
        seed: the job's seed.
        config: a validated config (its ``model``, ``finetune``, ``evaluate`` and ``strict``
            keys), or :func:`job_settings` of this experiment and model (what the workflow
            passes).
        experiment: a key of ``evaluate.experiments``.
        pretrained: the pretrained ``model.pt`` (mcsp and mcsp_linear).

    Returns:
        ``(predictions, metrics)``: per-item test predictions (with experiment, model, task, fold
        and seed columns) and the subject-level metrics in the long format of
        :func:`mcsp.evaluate.tidy_metrics`, with ``n_subjects`` and ``note``. A fold the data
        cannot serve (a class missing from the training folds, an empty split) gives no
        predictions, NaN metrics and the reason in ``note``, unless ``config["strict"]``.
    """
    job = config if "evaluate" not in config else job_settings(config, experiment, model)
    keys = {"experiment": experiment, "model": model, "task": task, "fold": fold, "seed": seed}
    try:
        if model in MCSP_MODELS:
            settings = {**job["finetune"], "mode": MCSP_MODELS[model]}
            predictions = finetune(
                store_dir,
                task,
                fold,
                seed,
                pretrained=None if model == "mcsp_scratch" else pretrained,
                settings=settings,
                model_settings=job["model"],
            )
        else:
            predictions = run_baseline(store_dir, model, task, fold, seed, job["baseline"])
    except McspError as err:
        if job["strict"]:
            raise
        log.warning("evaluation job %s left without predictions: %s", keys, err)
        metrics = tidy_metrics(dict.fromkeys(METRICS, float("nan")), **keys)
        empty = pd.DataFrame(columns=[*PREDICTION_COLUMNS, *keys])
        return empty, metrics.assign(n_subjects=0, note=str(err))
    subjects = subject_scores(predictions)
    columns = score_columns(subjects)
    score = subjects["score"] if columns == ["score"] else subjects[columns].to_numpy()
    metrics = tidy_metrics(binary_metrics(subjects["y"], score), **keys)
    metrics = metrics.assign(n_subjects=len(subjects), note=one_class_note(subjects["y"]))
    record = {**predictions.attrs, "pretrained": None if pretrained is None else str(pretrained)}
    predictions = predictions.assign(**keys)
    predictions.attrs = record
    return predictions, metrics


def one_class_note(labels: pd.Series) -> str:
    """Why a test set's AUROC (and one recall) is undefined: its subjects hold one class; else
    empty."""
    classes = sorted(pd.unique(labels.dropna()))
    if len(classes) >= 2:
        return ""
    held = f"class {classes[0]} only" if classes else "no labelled subject"
    return (
        f"the test subjects ({len(labels)}) hold {held}: AUROC is undefined on this fold "
        "(the pooled-folds row scores it); use fewer folds or more subjects."
    )


def write_job(predictions: pd.DataFrame, metrics: pd.DataFrame, out: str | Path) -> None:
    """``<out>`` = metrics TSV; beside it the predictions (``*_predictions.tsv``) and what the
    job selected and started from (``*_job.json``: hyperparameters, epochs, pretrained model)."""
    out = Path(out)
    with atomic_output(predictions_path(out)) as tmp:
        predictions.to_csv(tmp, sep="\t", index=False)
    record = out.with_name(out.name.replace("_metrics.tsv", "_job.json"))
    write_text(record, json.dumps(predictions.attrs, indent=1, default=str) + "\n")
    with atomic_output(out) as tmp:  # last: the rule's output
        metrics.to_csv(tmp, sep="\t", index=False)


def predictions_path(metrics_path: str | Path) -> Path:
    """Where :func:`write_job` puts the predictions of a job's metrics file."""
    path = Path(metrics_path)
    return path.with_name(path.name.replace("_metrics.tsv", "_predictions.tsv"))


def _metrics_by(predictions: pd.DataFrame, by: list[str], **fixed: Any) -> pd.DataFrame:
    """Subject-level metrics of each group of ``predictions`` (``fixed`` sets other keys)."""
    tables = []
    for values, group in predictions.groupby(by, sort=False):
        subjects = subject_scores(group)
        columns = score_columns(subjects)
        score = subjects["score"] if columns == ["score"] else subjects[columns].to_numpy()
        keys = {**dict(zip(by, values, strict=True)), **fixed}
        table = tidy_metrics(binary_metrics(subjects["y"], score), **keys)
        tables.append(table.assign(n_subjects=len(subjects), note=one_class_note(subjects["y"])))
    if not tables:
        return pd.DataFrame(columns=[*KEYS, "metric", "value", "n_subjects", "note"])
    return pd.concat(tables, ignore_index=True)


def pooled_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics of the test predictions of all folds together, per experiment, model, task and
    seed (``fold`` = ``pooled``): defined even when a small fold holds one class only."""
    return _metrics_by(predictions, ["experiment", "model", "task", "seed"], fold="pooled")


def seed_ensemble(predictions: pd.DataFrame) -> pd.DataFrame:
    """Predictions of the seed ensembles: for every (experiment, model, task) run with two or
    more seeds, model ``<model>+ens`` with seed ``ens``, whose subject scores are the mean over
    the seeds' models (every seed scores the same test items, so the mean of all rows of a
    subject is the mean of the seeds' subject scores)."""
    seeds = predictions.groupby(["experiment", "model", "task"])["seed"].transform("nunique")
    part = predictions[seeds >= 2]
    return part.assign(model=part["model"].astype(str) + ENSEMBLE_SUFFIX, seed="ens")


def blend_predictions(
    predictions: pd.DataFrame, blends: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Predictions of late blends of models run in the same experiment: model NAME, for each
    (experiment, task, fold, seed) where every component model has test predictions, scores each
    subject with the mean over components of its subject score's rank among the fold's test
    subjects, scaled to (0, 1]. Ranks put a logistic regression's probabilities and a network's
    on one scale without fitting anything, so no fold is used to weigh the components.

    Raises:
        ValueError: a blend names fewer than two models, a name already used by a model, or a
            component whose task is not binary.
    """
    keys = ["experiment", "task", "fold", "seed"]
    tables = []
    for name, components in blends.items():
        if len(set(components)) < 2:
            raise ValueError(f"evaluate.blends.{name}: name two or more models, got {components}.")
        if name in set(predictions["model"]):
            raise ValueError(f"evaluate.blends.{name}: the name is already a model's; rename it.")
        part = predictions[predictions["model"].isin(components)]
        before = len(tables)
        for values, group in part.groupby(keys, sort=False):
            if set(group["model"]) != set(components):
                continue
            ranks, labels = [], None
            for model, rows in group.groupby("model", sort=True):
                if "score" not in rows or rows["score"].isna().any():
                    raise ValueError(
                        f"evaluate.blends.{name}: {model} on task {values[1]} is not binary; "
                        "blends take binary tasks only."
                    )
                subjects = subject_scores(rows).set_index(["cohort", "subject"])
                ranks.append(subjects["score"].rank(method="average") / len(subjects))
                labels = subjects["y"]
            blended = pd.concat(ranks, axis=1, join="inner").mean(axis=1).rename("score")
            blended = pd.concat([blended, labels], axis=1, join="inner").reset_index()
            blended["sample_id"] = blended["cohort"].astype(str) + "_sub-" + blended["subject"]
            tables.append(
                blended.assign(split="test", model=name, **dict(zip(keys, values, strict=True)))
            )
        if len(tables) == before:
            log.warning(
                "evaluate.blends.%s: no experiment, task, fold and seed has predictions of all of "
                "%s; the blend is not scored.",
                name,
                ", ".join(components),
            )
    if not tables:
        return predictions.iloc[:0]
    return pd.concat(tables, ignore_index=True)[list(predictions.columns)]


def _sort_key(order: Mapping[str, int]):
    def key(column: pd.Series) -> pd.Series:
        if column.name == "metric":
            return column.map(order)
        if column.name == "fold":  # numbers in numeric order
            return column.map(lambda v: (0, int(v), "") if str(v).isdigit() else (1, 0, str(v)))
        return column

    return key


def merge_metrics(
    paths: Sequence[str | Path], settings: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All jobs' metrics in one tidy table, its summary and the paired comparison.

    Args:
        paths: the jobs' metrics files (predictions beside them, :func:`predictions_path`).
        settings: the ``evaluate`` block (``blends``, ``seed_ensemble``, ``reference``,
            ``bootstrap``);
            None = the schema defaults.

    Returns:
        ``(metrics, summary, paired)``. ``metrics``: columns experiment, model, task, fold, seed,
        metric, value, n_subjects; per-fold rows (seed ensembles ``<model>+ens`` with seed
        ``ens`` after the models run with two or more seeds, when ``seed_ensemble``), then
        ``fold = pooled`` rows. ``summary``: mean ± sd over folds × seeds (``scope = per
        fold``) and over seeds of the pooled metrics (``scope = pooled folds``). ``paired``:
        :func:`mcsp.compare.paired_comparison` against ``reference``.
    """

    cfg = {**schema_defaults("config", "evaluate"), **(settings or {})}
    if not paths:
        raise ValueError("no evaluation job to merge: check evaluate.models and evaluate.tasks")
    per_fold = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    predictions = pd.concat(
        [pd.read_csv(predictions_path(p), sep="\t", dtype={"subject": str}) for p in paths],
        ignore_index=True,
    )
    per_fold = per_fold.astype({"fold": str, "seed": str})
    predictions = predictions.astype({"fold": str, "seed": str})
    if cfg["blends"]:
        blended = blend_predictions(predictions, cfg["blends"])
        by = ["experiment", "model", "task", "fold", "seed"]
        per_fold = pd.concat([per_fold, _metrics_by(blended, by)], ignore_index=True)
        predictions = pd.concat([predictions, blended], ignore_index=True)
    if cfg["seed_ensemble"]:
        ensemble = seed_ensemble(predictions)
        by = ["experiment", "model", "task", "fold"]
        per_fold = pd.concat([per_fold, _metrics_by(ensemble, by, seed="ens")], ignore_index=True)
        predictions = pd.concat([predictions, ensemble], ignore_index=True)
    pooled = pooled_metrics(predictions)
    order = {m: i for i, m in enumerate(METRICS)}
    per_fold = per_fold.sort_values(
        ["experiment", "task", "model", "fold", "seed", "metric"],
        key=_sort_key(order),
        kind="stable",
    )
    metrics = pd.concat([per_fold, pooled.astype({"fold": str, "seed": str})], ignore_index=True)
    summary = pd.concat(
        [
            summarise(per_fold).assign(scope="per fold"),
            summarise(pooled).assign(scope="pooled folds"),
        ],
        ignore_index=True,
    )
    boot = cfg["bootstrap"]
    paired = paired_comparison(
        per_fold,
        predictions,
        cfg["reference"],
        boot["replicates"],
        boot["seed"],
        cfg["reference_experiment"],
    )
    return metrics, summary, paired


def summary_table(path: str | Path, metric: str = "auroc", scope: str | None = None) -> str:
    """A summary.tsv as text: one block per experiment and scope, tasks × models, mean ± sd."""
    path = Path(path)
    if not path.is_file():
        raise McspError(f"{path}: not found; run the evaluation first (rule metrics).")
    table = pd.read_csv(path, sep="\t")
    table = table[table["metric"] == metric]
    if table.empty:
        raise McspError(f"{path}: no rows for metric {metric!r} (metrics: {', '.join(METRICS)}).")
    blocks = []
    for (experiment, where), part in table.groupby(["experiment", "scope"], sort=False):
        if scope is not None and where != scope:
            continue
        grid = part.pivot(index="task", columns="model", values="mean ± sd")
        grid = grid.astype(object).fillna("n/a")
        over = "over folds × seeds" if where == "per fold" else "of pooled folds, over seeds"
        title = f"{metric} — experiment {experiment}, {where} (mean ± sd {over})"
        blocks.append(f"{title}\n{grid.to_string()}")
    return "\n\n".join(blocks)
