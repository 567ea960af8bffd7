"""Paired comparison of each model with a reference model on the same folds and seeds.

For each experiment and task, every model is compared with the reference model (default
``fc_logreg``, :func:`paired_comparison`): both were scored on the same subject-level test folds
with the same seeds, so their differences are paired.

- ``delta_mean``: the mean over folds × seeds of the per-fold AUROC difference (model minus
  reference), with its sd.
- ``delta_pooled`` and the 95% interval ``ci_low`` … ``ci_high``: the AUROC difference of the
  pooled test predictions (every subject once per seed), averaged over seeds; the interval is the
  percentile bootstrap over subjects (resampled within each class, the same subjects for every
  seed of a replicate).
- ``p_wilcoxon``: two-sided Wilcoxon signed-rank test of the per-fold differences (averaged over
  seeds; exact for small numbers of folds). ``p_corrected_t``: the corrected resampled t-test of
  Nadeau & Bengio (2003), which widens the variance of the per-fold differences by
  ``1/k + n_test/n_train`` because cross-validation folds share training subjects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger(__name__)

ENSEMBLE_SUFFIX = "+ens"  # models whose predictions are the mean over seeds (mcsp.experiments)

PAIRED_COLUMNS = [
    "experiment",
    "task",
    "model",
    "reference",
    "reference_experiment",
    "n_folds",
    "n_seeds",
    "n_subjects",
    "model_auroc",
    "reference_auroc",
    "delta_mean",
    "delta_sd",
    "folds_better",
    "delta_pooled",
    "ci_low",
    "ci_high",
    "p_wilcoxon",
    "p_corrected_t",
    "n_bootstrap",
]


def rank_auroc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``scores`` (R, n) against binary ``y`` (R, n) or (n,), via ranks.

    Ties get average ranks (the Mann–Whitney statistic), so the value equals scikit-learn's
    ``roc_auc_score``; rows holding one class only give NaN.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    y = np.broadcast_to(np.asarray(y, dtype=bool), scores.shape)
    ranks = stats.rankdata(scores, axis=1)
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        u = (ranks * y).sum(axis=1) - n_pos * (n_pos + 1) / 2
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def bootstrap_indices(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """(n, len(y)) subject indices drawn with replacement within each class (class sizes kept)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    parts = [
        rng.choice(np.flatnonzero(y == c), size=(n, int((y == c).sum())), replace=True)
        for c in np.unique(y)
    ]
    return np.concatenate(parts, axis=1)


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (NaN when all are zero or < 2)."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < 2 or not np.any(d != 0):
        return float("nan")
    return float(stats.wilcoxon(d, alternative="two-sided").pvalue)


def corrected_t_p(differences: Sequence[float], test_train_ratio: float) -> float:
    """Two-sided p of Nadeau & Bengio's corrected resampled t-test.

    ``t = mean(d) / sqrt((1/k + n_test/n_train) · var(d))`` with ``k`` differences and ``k - 1``
    degrees of freedom; NaN with fewer than two differences or zero variance.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    k = len(d)
    if k < 2:
        return float("nan")
    var = d.var(ddof=1)
    if var == 0:
        return float("nan")
    t = d.mean() / np.sqrt((1 / k + test_train_ratio) * var)
    return float(2 * stats.t.sf(abs(t), df=k - 1))


def _fold_auroc(metrics: pd.DataFrame, experiment: str, model: str, task: str) -> pd.Series:
    rows = metrics[
        (metrics["experiment"] == experiment)
        & (metrics["model"] == model)
        & (metrics["task"] == task)
        & (metrics["metric"] == "auroc")
        & (metrics["fold"].astype(str) != "pooled")
    ]
    return rows.set_index([rows["fold"].astype(str), rows["seed"].astype(str)])["value"]


def _subject_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Subject × seed scores of one model's test predictions (binary tasks: ``score``)."""
    grouped = predictions.groupby(["seed", "cohort", "subject"], sort=True)
    table = grouped.agg(y=("y", "first"), score=("score", "mean"), fold=("fold", "first"))
    return table.reset_index()


def paired_comparison(
    metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    reference: str = "fc_logreg",
    n_bootstrap: int = 2000,
    seed: int = 0,
    reference_experiment: str | None = None,
) -> pd.DataFrame:
    """Each model against ``reference`` per experiment and task (see the module docstring).

    Args:
        metrics: per-fold metrics (``experiment, model, task, fold, seed, metric, value``).
        predictions: every job's test predictions (``experiment, model, task, fold, seed,
            cohort, subject, y, score``).
        reference: the model every other model is compared with. It is taken from the same
            experiment when it ran there for the task, otherwise from the first experiment that
            ran it for the task (``reference_experiment`` says which).
        n_bootstrap: bootstrap replicates of the interval.
        seed: seed of the bootstrap.
        reference_experiment: always take the reference from this experiment (so that, e.g., a
            harmonised ``fc_logreg`` of another experiment is compared with the plain one).

    Returns:
        One row per (experiment, task, model) with the columns of :data:`PAIRED_COLUMNS`; empty
        when the reference never ran. Multi-class tasks (no ``score`` column) are skipped.
    """
    rows = []
    if predictions.empty or "score" not in predictions.columns:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    predictions = predictions[predictions["score"].notna()]
    keys = metrics[["experiment", "task", "model"]].drop_duplicates()
    for experiment, task, model in keys.itertuples(index=False, name=None):
        # a seed ensemble is compared with the reference's seed ensemble
        ref = reference + ENSEMBLE_SUFFIX if model.endswith(ENSEMBLE_SUFFIX) else reference
        ref_experiment = _reference_experiment(metrics, experiment, task, ref, reference_experiment)
        if ref_experiment is None or (model == ref and experiment == ref_experiment):
            continue
        row = _compare(
            _fold_auroc(metrics, experiment, model, task),
            _fold_auroc(metrics, ref_experiment, ref, task),
            _select(predictions, experiment, model, task),
            _select(predictions, ref_experiment, ref, task),
            n_bootstrap,
            seed,
        )
        if row is None:
            log.info("%s/%s/%s: no fold shared with %s", experiment, task, model, ref)
            continue
        rows.append(
            {
                "experiment": experiment,
                "task": task,
                "model": model,
                "reference": ref,
                "reference_experiment": ref_experiment,
                **row,
            }
        )
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def _select(predictions: pd.DataFrame, experiment: str, model: str, task: str) -> pd.DataFrame:
    return predictions[
        (predictions["experiment"] == experiment)
        & (predictions["model"] == model)
        & (predictions["task"] == task)
    ]


def _reference_experiment(
    metrics: pd.DataFrame, experiment: str, task: str, reference: str, fixed: str | None = None
) -> str | None:
    ran = metrics[(metrics["model"] == reference) & (metrics["task"] == task)]
    if fixed is not None:
        return fixed if fixed in set(ran["experiment"]) else None
    if experiment in set(ran["experiment"]):
        return experiment
    return None if ran.empty else str(ran["experiment"].iloc[0])


def _compare(
    model_folds: pd.Series,
    ref_folds: pd.Series,
    model_pred: pd.DataFrame,
    ref_pred: pd.DataFrame,
    n_bootstrap: int,
    seed: int,
) -> dict | None:
    both = pd.concat({"model": model_folds, "reference": ref_folds}, axis=1, join="inner")
    both = both.dropna()
    if both.empty:
        return None
    both["delta"] = both["model"] - both["reference"]
    per_fold = both.groupby(level=0)["delta"].mean()
    out = {
        "n_folds": int(len(per_fold)),
        "n_seeds": int(both.index.get_level_values(1).nunique()),
        "model_auroc": float(both["model"].mean()),
        "reference_auroc": float(both["reference"].mean()),
        "delta_mean": float(both["delta"].mean()),
        "delta_sd": float(both["delta"].std(ddof=1)) if len(both) > 1 else float("nan"),
        "folds_better": int((per_fold > 0).sum()),
        "p_wilcoxon": wilcoxon_p(per_fold),
    }
    pooled = _pooled(model_pred, ref_pred, set(both.index), n_bootstrap, seed)
    out["p_corrected_t"] = corrected_t_p(per_fold, pooled.pop("test_train_ratio"))
    return {**out, **pooled}


def _pooled(
    model_pred: pd.DataFrame,
    ref_pred: pd.DataFrame,
    shared: set[tuple[str, str]],
    n_bootstrap: int,
    seed: int,
) -> dict:
    """Pooled-prediction AUROC difference, its bootstrap interval and the test/train ratio."""
    empty = {
        "n_subjects": 0,
        "delta_pooled": float("nan"),
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "n_bootstrap": 0,
        "test_train_ratio": float("nan"),
    }
    if model_pred.empty or ref_pred.empty:
        return empty

    def keep(pred: pd.DataFrame) -> pd.DataFrame:
        mask = [(str(f), str(s)) in shared for f, s in zip(pred["fold"], pred["seed"], strict=True)]
        return _subject_table(pred[mask])

    a, b = keep(model_pred), keep(ref_pred)
    table = a.merge(b, on=["seed", "cohort", "subject"], suffixes=("", "_ref"))
    if table.empty:
        return empty
    seeds = sorted(table["seed"].astype(str).unique())
    subjects = table.groupby(["cohort", "subject"]).size()
    # subjects scored under every seed, in one order, so that a replicate resamples them all
    common = subjects[subjects == len(seeds)].index
    table = table.set_index(["cohort", "subject"]).loc[common].reset_index()
    table = table.sort_values(["seed", "cohort", "subject"], kind="stable")
    n = len(common)
    y = table[table["seed"].astype(str) == seeds[0]]["y"].to_numpy(dtype=int)
    model_scores = table["score"].to_numpy(dtype=float).reshape(len(seeds), n)
    ref_scores = table["score_ref"].to_numpy(dtype=float).reshape(len(seeds), n)
    point = np.nanmean(rank_auroc(y, model_scores) - rank_auroc(y, ref_scores))
    idx = bootstrap_indices(y, n_bootstrap, seed)
    deltas = np.zeros(n_bootstrap)
    for s in range(len(seeds)):
        deltas += rank_auroc(y[idx], model_scores[s][idx]) - rank_auroc(y[idx], ref_scores[s][idx])
    deltas /= len(seeds)
    folds = table[table["seed"].astype(str) == seeds[0]]["fold"].astype(str)
    per_fold = folds.value_counts()
    n_test = float(per_fold.mean())
    return {
        "n_subjects": int(n),
        "delta_pooled": float(point),
        "ci_low": float(np.nanpercentile(deltas, 2.5)),
        "ci_high": float(np.nanpercentile(deltas, 97.5)),
        "n_bootstrap": int(n_bootstrap),
        "test_train_ratio": n_test / max(n - n_test, 1.0),
    }


def paired_text(paired: pd.DataFrame) -> str:
    """The paired table as text: one line per model, grouped by experiment and task."""
    if paired.empty:
        return "paired differences: none (the reference model did not run)"
    lines = []
    for (experiment, task), part in paired.groupby(["experiment", "task"], sort=False):
        ref = part["reference"].iloc[0]
        where = part["reference_experiment"].iloc[0]
        source = "" if where == experiment else f" of experiment {where}"
        lines.append(f"AUROC difference to {ref}{source} — experiment {experiment}, task {task}")
        for r in part.itertuples():
            lines.append(
                f"  {r.model:<18} {r.delta_mean:+.3f} ± {r.delta_sd:.3f} over {r.n_folds} folds × "
                f"{r.n_seeds} seed{'s' if r.n_seeds != 1 else ''} "
                f"(better in {r.folds_better}/{r.n_folds}); pooled "
                f"{r.delta_pooled:+.3f} [95% CI {r.ci_low:+.3f}, {r.ci_high:+.3f}]; "
                f"p = {r.p_wilcoxon:.3g} (Wilcoxon), {r.p_corrected_t:.3g} (corrected t)"
            )
    return "\n".join(lines)
