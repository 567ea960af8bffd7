"""Evaluation jobs: one (experiment, model, task, fold, seed) per job, merged into tidy tables.

A job fine-tunes MCSP (``mcsp`` full, ``mcsp_linear``, ``mcsp_scratch``) or fits a baseline of
:mod:`mcsp.baselines` on the training folds, selects on the validation fold and scores the test
fold; its predictions are averaged per subject before the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mcsp.baselines import BASELINES, run_baseline
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
from mcsp.train import merge

log = logging.getLogger(__name__)

MCSP_MODELS = {"mcsp": "full", "mcsp_linear": "linear", "mcsp_scratch": "scratch"}
MODELS = (*MCSP_MODELS, *BASELINES)
PREDICTION_COLUMNS = ["cohort", "subject", "sample_id", "y", "score", "split"]


def experiment_settings(config: Mapping[str, Any], experiment: str) -> dict[str, Any]:
    """``{"models", "tasks", "finetune"}`` of an experiment: its own keys over the config's.

    ``tasks`` is None when neither the experiment nor ``evaluate.tasks`` lists them (every label
    of the study's cohorts, which only the workflow knows).
    """
    spec = config["evaluate"]["experiments"].get(experiment)
    if spec is None:
        raise KeyError(f"experiment {experiment!r} is not in evaluate.experiments")
    return {
        "models": list(spec.get("models") or config["evaluate"]["models"]),
        "tasks": spec.get("tasks") or config["evaluate"].get("tasks"),
        "finetune": merge(config.get("finetune") or {}, spec.get("finetune")),
    }


def applicable(model: str, modalities: Iterable[str]) -> bool:
    """Whether ``model`` can run on a study with these modalities."""
    if model in MCSP_MODELS:
        return True
    return BASELINES[model].modality in set(modalities)


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
        config: a validated config (its ``model``, ``finetune`` and ``evaluate`` blocks).
        experiment: a key of ``evaluate.experiments``.
        pretrained: the pretrained ``model.pt`` (mcsp and mcsp_linear).

    Returns:
        ``(predictions, metrics)``: per-item test predictions (with experiment, model, task, fold
        and seed columns) and the subject-level metrics in the long format of
        :func:`mcsp.evaluate.tidy_metrics`, with ``n_subjects`` and ``note``. A fold the data
        cannot serve (a class missing from the training folds, an empty split) gives no
        predictions, NaN metrics and the reason in ``note``, unless ``config["strict"]``.
    """
    spec = experiment_settings(config, experiment)
    keys = {"experiment": experiment, "model": model, "task": task, "fold": fold, "seed": seed}
    try:
        if model in MCSP_MODELS:
            settings = {**spec["finetune"], "mode": MCSP_MODELS[model]}
            predictions = finetune(
                store_dir,
                task,
                fold,
                seed,
                pretrained=None if model == "mcsp_scratch" else pretrained,
                settings=settings,
                model_settings=config.get("model"),
            )
        else:
            settings = (config["evaluate"].get("baselines") or {}).get(model)
            predictions = run_baseline(store_dir, model, task, fold, seed, settings)
    except McspError as err:
        if config.get("strict"):
            raise
        log.warning("evaluation job %s left without predictions: %s", keys, err)
        metrics = tidy_metrics(dict.fromkeys(METRICS, float("nan")), **keys)
        empty = pd.DataFrame(columns=[*PREDICTION_COLUMNS, *keys])
        return empty, metrics.assign(n_subjects=0, note=str(err))
    subjects = subject_scores(predictions)
    columns = score_columns(subjects)
    score = subjects["score"] if columns == ["score"] else subjects[columns].to_numpy()
    metrics = tidy_metrics(binary_metrics(subjects["y"], score), **keys)
    metrics = metrics.assign(n_subjects=len(subjects), note="")
    predictions = predictions.assign(**keys)
    return predictions, metrics


def write_job(predictions: pd.DataFrame, metrics: pd.DataFrame, out: str | Path) -> None:
    """``<out>`` = metrics TSV; predictions go beside it as ``*_predictions.tsv``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    predictions.to_csv(predictions_path(out), sep="\t", index=False)
    metrics.to_csv(out, sep="\t", index=False)


def predictions_path(metrics_path: str | Path) -> Path:
    """Where :func:`write_job` puts the predictions of a job's metrics file."""
    path = Path(metrics_path)
    return path.with_name(path.name.replace("_metrics.tsv", "_predictions.tsv"))


def pooled_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """Metrics of the test predictions of all folds together, per experiment, model, task and
    seed (``fold`` = ``pooled``): defined even when a small fold holds one class only."""
    tables = []
    for (experiment, model, task, seed), group in predictions.groupby(
        ["experiment", "model", "task", "seed"], sort=False
    ):
        subjects = subject_scores(group)
        columns = score_columns(subjects)
        score = subjects["score"] if columns == ["score"] else subjects[columns].to_numpy()
        keys = {"experiment": experiment, "model": model, "task": task, "seed": seed}
        table = tidy_metrics(binary_metrics(subjects["y"], score), **keys, fold="pooled")
        tables.append(table.assign(n_subjects=len(subjects), note=""))
    if not tables:
        return pd.DataFrame(columns=[*KEYS, "metric", "value", "n_subjects", "note"])
    return pd.concat(tables, ignore_index=True)


def merge_metrics(paths: Sequence[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All jobs' metrics in one tidy table (plus the pooled-fold rows), and its summary.

    Returns:
        ``(metrics, summary)``. ``metrics``: columns experiment, model, task, fold, seed, metric,
        value, n_subjects; per-fold rows, then ``fold = pooled`` rows. ``summary``: mean ± sd
        over folds × seeds (``scope = per fold``) and over seeds of the pooled metrics
        (``scope = pooled folds``).
    """
    if not paths:
        raise ValueError("no evaluation job to merge: check evaluate.models and evaluate.tasks")
    per_fold = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    predictions = pd.concat(
        [pd.read_csv(predictions_path(p), sep="\t", dtype={"subject": str}) for p in paths],
        ignore_index=True,
    )
    pooled = pooled_metrics(predictions)
    order = {m: i for i, m in enumerate(METRICS)}
    per_fold = per_fold.sort_values(
        ["experiment", "task", "model", "fold", "seed", "metric"],
        key=lambda c: c.map(order) if c.name == "metric" else c,
        kind="stable",
    )
    metrics = pd.concat([per_fold.astype({"fold": str}), pooled], ignore_index=True)
    summary = pd.concat(
        [
            summarise(per_fold).assign(scope="per fold"),
            summarise(pooled).assign(scope="pooled folds"),
        ],
        ignore_index=True,
    )
    return metrics, summary


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
