"""The evaluation protocol: metrics, subject-level scores, fold roles and result tables.

Every model (the pretrained MCSP encoders and the baselines in :mod:`mcsp.baselines`) is scored
the same way:

- Folds are the store's subject-level folds (:mod:`mcsp.splits`). For test fold ``k``,
  :func:`evaluation_split` makes fold ``k + 1`` (mod K) the validation fold and the other folds
  the training set. Model selection and early stopping only ever see the validation fold; the
  test fold is scored once, with the chosen model.
- A model scores samples (fMRI windows, EEG segments or pairs); :func:`subject_scores` averages
  them per subject, and :func:`binary_metrics` scores subjects.
- :func:`tidy_metrics` turns one run's metrics into a long table; :func:`summarise` gives
  mean ± sd over folds × seeds.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
)

from mcsp.exceptions import McspError

METRICS = ("auroc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1")
KEYS = ("experiment", "model", "task", "fold", "seed")
# Columns of a store's index.tsv that are not labels (mcsp.store.build_store).
INDEX_COLUMNS = (
    "sample_id",
    "cohort",
    "subject",
    "session",
    "site",
    "modality",
    "task",
    "run",
    "tag",
    "start",
    "row",
    "fold",
)
_SCORE_K = re.compile(r"^score_(\d+)$")


def score_columns(table: pd.DataFrame) -> list[str]:
    """``["score"]`` (binary) or ``score_0 … score_{C-1}`` in class order (multi-class)."""
    if "score" in table.columns:
        return ["score"]
    columns = sorted(
        (c for c in table.columns if _SCORE_K.match(str(c))),
        key=lambda c: int(_SCORE_K.match(c).group(1)),
    )
    if not columns:
        raise ValueError("predictions need a 'score' column or columns score_0 … score_{C-1}.")
    return columns


def _multiclass_auroc(y: np.ndarray, score: np.ndarray) -> float:
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if len(present) == score.shape[1]:
        return float(
            roc_auc_score(
                y, score, multi_class="ovr", average="macro", labels=np.arange(score.shape[1])
            )
        )
    # Some classes absent from y: one-vs-rest AUROC averaged over the classes present.
    return float(np.mean([roc_auc_score(y == k, score[:, k]) for k in present]))


def auroc(y_true: Any, score: Any) -> float:
    """AUROC of binary ``(n,)`` or multi-class ``(n, C)`` scores (as in :func:`binary_metrics`)."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    if s.ndim == 2:
        return _multiclass_auroc(y, s)
    return float(roc_auc_score(y, s)) if len(np.unique(y)) > 1 else float("nan")


def binary_metrics(y_true: Any, score: Any, threshold: float = 0.5) -> dict[str, float]:
    """Classification metrics of scores against labels (scikit-learn's implementations).

    Args:
        y_true: labels, 0/1 (binary) or 0 … C-1 (multi-class).
        score: binary: shape ``(n,)``, probability of class 1; multi-class: shape ``(n, C)``,
            class probabilities (rows summing to 1).
        threshold: binary decision threshold on the score (class 1 when ``score >= threshold``).

    Returns:
        ``{metric: value}`` for every name in :data:`METRICS`. Binary: sensitivity = recall of
        class 1, specificity = recall of class 0, F1 of class 1. Multi-class: AUROC one-vs-rest
        macro (over the classes present when some are absent), macro F1, argmax predictions,
        sensitivity and specificity NaN. AUROC is NaN when ``y_true`` holds one class only;
        a recall is NaN when its class is absent.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype=float)
    if len(y) != len(s):
        raise ValueError(f"{len(y)} labels but {len(s)} scores.")
    if s.ndim == 1:
        pred = (s >= threshold).astype(int)
        return {
            "auroc": auroc(y, s),
            "accuracy": float(accuracy_score(y, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "sensitivity": float(recall_score(y, pred, pos_label=1, zero_division=np.nan)),
            "specificity": float(recall_score(y, pred, pos_label=0, zero_division=np.nan)),
            "f1": float(f1_score(y, pred, pos_label=1, zero_division=np.nan)),
        }
    if s.ndim != 2:
        raise ValueError(f"score must be 1-D (binary) or 2-D (multi-class), not {s.ndim}-D.")
    pred = s.argmax(axis=1)
    return {
        "auroc": auroc(y, s),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "sensitivity": float("nan"),
        "specificity": float("nan"),
        "f1": float(f1_score(y, pred, average="macro", zero_division=np.nan)),
    }


def subject_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Mean score(s) per subject.

    Args:
        predictions: columns ``cohort, subject, y`` and ``score`` (binary) or
            ``score_0 … score_{C-1}`` (multi-class); any number of rows (samples, pairs) per
            subject.

    Returns:
        One row per ``(cohort, subject)`` (sorted): ``cohort, subject, y``, the mean score
        column(s) and ``n`` (rows averaged).

    Raises:
        ValueError: a subject carries two different labels, or a label is missing.
    """
    columns = score_columns(predictions)
    if predictions["y"].isna().any():
        raise ValueError("predictions hold rows without a label y.")
    grouped = predictions.groupby(["cohort", "subject"], sort=True)
    n_labels = grouped["y"].nunique()
    conflicting = n_labels[n_labels > 1]
    if len(conflicting):
        names = ", ".join(f"{c}/{s}" for c, s in conflicting.index[:5])
        raise ValueError(f"subjects with two different labels y: {names}")
    out = grouped[columns].mean()
    out.insert(0, "y", grouped["y"].first().astype(int))
    out["n"] = grouped.size()
    return out.reset_index()


def class_probabilities(logits: Any, n_classes: int) -> np.ndarray:
    """Softmax of a (n, classes) logits tensor: P(class 1) for two classes, else every column."""
    probs = logits.softmax(dim=1).double().numpy()
    return probs[:, 1] if n_classes == 2 else probs


def prediction_frame(items: pd.DataFrame, y: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Predictions table: ``cohort, subject, sample_id, y`` and ``score`` or ``score_k``."""
    out = items[["cohort", "subject", "sample_id"]].reset_index(drop=True)
    out["y"] = np.asarray(y, dtype=int)
    if scores.ndim == 1:
        out["score"] = scores
    else:
        for k in range(scores.shape[1]):
            out[f"score_{k}"] = scores[:, k]
    return out


class EarlyStopping:
    """Model selection on the validation split: keeps the weights of the best epoch.

    Scores are tuples compared lexicographically (e.g. ``(subject AUROC, -validation loss)``:
    the loss breaks AUROC ties). Training stops after ``patience`` epochs without improvement.
    """

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)
        self.best: tuple[float, ...] = (-np.inf,)
        self.best_epoch = -1
        self.best_state: dict | None = None
        self.waited = 0

    def step(self, epoch: int, score: tuple[float, ...], module: Any) -> bool:
        """Record ``score`` for ``epoch`` (copying ``module``'s weights if best); True = stop."""
        if score > self.best:
            self.best, self.best_epoch, self.waited = score, epoch, 0
            self.best_state = copy.deepcopy(module.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience

    def restore(self, module: Any) -> None:
        """Load the best epoch's weights into ``module`` (if any epoch improved on nothing)."""
        if self.best_state is not None:
            module.load_state_dict(self.best_state)

    def selection(self, criterion: str, epochs_run: int) -> dict[str, Any]:
        """What was selected, for the job's records."""
        return {
            "criterion": criterion,
            "best": float(self.best[0]),
            "best_epoch": self.best_epoch,
            "epochs_run": epochs_run,
        }


def evaluation_split(
    folds: pd.Series, test_fold: int, n_folds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test masks of one outer fold.

    Test = fold ``test_fold``; validation = fold ``(test_fold + 1) % n_folds``; train = the other
    folds. Model selection (hyperparameters, early stopping) only sees the validation fold; the
    test fold is scored once, with the selected model. Folds are subject-level, so no subject
    lies on two sides.

    Args:
        folds: the fold of each subject or sample (integers).
        test_fold: the outer fold held out for testing.
        n_folds: folds in the study (three or more).

    Returns:
        Three boolean arrays aligned with ``folds``: disjoint, covering every row.

    Raises:
        ValueError: fewer than three folds, a test fold out of range, a missing or unknown fold.
    """
    if n_folds < 3:
        raise ValueError(
            f"evaluation needs at least 3 folds (train, validation, test); got {n_folds}. "
            "Raise study.folds."
        )
    if not 0 <= test_fold < n_folds:
        raise ValueError(f"test fold {test_fold} is outside 0 … {n_folds - 1}.")
    series = pd.Series(folds)
    if series.isna().any():
        raise ValueError("some rows have no fold.")
    values = series.to_numpy(dtype=int)
    outside = sorted(set(values.tolist()) - set(range(n_folds)))
    if outside:
        raise ValueError(f"folds {outside} lie outside 0 … {n_folds - 1}.")
    test = values == test_fold
    val = values == (test_fold + 1) % n_folds
    return ~(test | val), val, test


def label_columns(index: pd.DataFrame) -> list[str]:
    """The label columns of a store index (every column that is not a standard one)."""
    return [c for c in index.columns if c not in INDEX_COLUMNS]


def labelled(index: pd.DataFrame, task: str) -> pd.DataFrame:
    """Rows of a store index whose ``task`` label is known (the original index is kept).

    Raises:
        McspError: the index has no column ``task``, or fewer than two classes remain.
    """
    if task not in index.columns:
        labels = label_columns(index)
        raise McspError(
            f"the store has no label {task!r} (labels: {', '.join(labels) or 'none'}); pick one "
            "of them or add the label to the cohorts' participants.tsv and rebuild the store."
        )
    kept = index[index[task].notna()].copy()
    classes = sorted(kept[task].unique())
    if len(classes) < 2:
        raise McspError(
            f"label {task!r}: {len(kept)} labelled rows hold {len(classes)} class "
            f"({', '.join(map(str, classes)) or 'none'}); classification needs two or more."
        )
    return kept


def tidy_metrics(metrics: Mapping[str, float], **keys: Any) -> pd.DataFrame:
    """One run's metrics as a long table.

    Args:
        metrics: ``{metric: value}`` (e.g. from :func:`binary_metrics`).
        **keys: ``experiment``, ``model``, ``task``, ``fold``, ``seed`` (missing ones are NA).

    Returns:
        Columns ``experiment, model, task, fold, seed, metric, value``, one row per metric.
    """
    unknown = sorted(set(keys) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown keys {unknown}; use {', '.join(KEYS)}.")
    rows = [
        {**{k: keys.get(k, pd.NA) for k in KEYS}, "metric": name, "value": float(value)}
        for name, value in metrics.items()
    ]
    return pd.DataFrame(rows, columns=[*KEYS, "metric", "value"])


def _format(mean: float, sd: float) -> str:
    if np.isnan(mean):
        return "nan"
    return f"{mean:.3f}" if np.isnan(sd) else f"{mean:.3f} ± {sd:.3f}"


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and n of each metric over folds × seeds.

    Args:
        metrics: long table(s) from :func:`tidy_metrics`, concatenated.

    Returns:
        One row per ``(experiment, model, task, metric)`` in order of appearance: ``mean``,
        ``sd`` (ddof = 1; NaN with one value), ``n`` (non-NaN values) and ``mean ± sd`` as text
        with three decimals (``"0.771 ± 0.032"``; the mean alone when sd is NaN).
    """
    group = ["experiment", "model", "task", "metric"]
    stats = metrics.groupby(group, sort=False, dropna=False)["value"].agg(
        mean="mean", sd=lambda v: v.std(ddof=1), n="count"
    )
    stats = stats.reset_index()
    stats["mean ± sd"] = [_format(m, s) for m, s in zip(stats["mean"], stats["sd"], strict=True)]
    return stats
