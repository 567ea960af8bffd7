"""Baselines run through the same subject-level folds as MCSP (:mod:`mcsp.evaluate`).

- ``fc_logreg`` / ``fc_svm``: the upper triangle of fMRI FC (:func:`fc_features`), standardised,
  then L2 logistic regression / a linear SVM (scikit-learn). The SVM's score is its decision
  function through a sigmoid (binary; softmax over classes for multi-class): not a calibrated
  probability, but AUROC only needs the ranking, and the 0.5 threshold is the SVM's own decision
  boundary. ``C`` is chosen from a grid by subject-averaged validation AUROC (ties go to the
  smaller ``C``), then the model is refitted on train + validation and scores the test fold.
- ``bandpower_logreg``: EEG log band power per channel (:func:`band_power_features`), the same
  pipeline and selection as ``fc_logreg``.
- scikit-learn baselines take ``harmonize: combat`` (:class:`mcsp.harmonize.ComBat` by site,
  fitted on the samples the estimator is fitted on: the training folds while C is chosen, the
  training and validation folds for the refit; the scored samples are only transformed).
- ``eegnet``: braindecode's EEGNet (v4, Lawhern et al. 2018) on the EEG temporal domain.
- ``brainnetcnn``: :class:`BrainNetCNN` (Kawahara et al. 2017) on fMRI FC matrices.

Deep baselines train on the training folds with Adam and class-weighted cross-entropy, stop early
on subject-averaged validation AUROC (binary, ties broken by the validation loss, which AUROC's
saturation on a few subjects makes common; validation loss for multi-class, or when the
validation fold holds one class), restore the best epoch's weights and then score the test fold
once. They do not refit on train + validation (there would be no data left to stop on).
Class weights are "balanced" (inverse class frequency over training samples) for every baseline.

Samples lacking a baseline's modality are not part of it; subjects without the task's label are
dropped (:func:`mcsp.evaluate.labelled`). Labels with two values are binary (the larger value is
class 1); with more, the sorted values map to classes ``0 … C-1``.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from mcsp.evaluate import (
    EarlyStopping,
    auroc,
    class_probabilities,
    evaluation_split,
    labelled,
    prediction_frame,
    subject_scores,
)
from mcsp.exceptions import McspError
from mcsp.harmonize import ComBat
from mcsp.store import read_store_table

log = logging.getLogger(__name__)

EEG_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}
CHUNK = 256

SKLEARN_DEFAULTS: dict[str, Any] = {
    "C_grid": [1e-3, 1e-2, 1e-1, 1.0, 10.0],  # 10^-3 … 10^1
    "max_iter": 5000,
    "harmonize": "none",  # or "combat": ComBat by site, fitted on the subjects being fitted
}
DEEP_DEFAULTS: dict[str, Any] = {
    "epochs": 100,  # most epochs
    "lr": 1e-3,  # Adam learning rate
    "weight_decay": 0.0,  # Adam weight decay
    "batch_size": 32,
    "patience": 10,  # epochs without a better validation score before stopping
}
EEGNET_DEFAULTS: dict[str, Any] = {
    "F1": 8,  # temporal filters
    "D": 2,  # spatial filters per temporal filter (F2 = F1 × D)
    "kernel_s": 0.5,  # temporal kernel in seconds (64 samples at 128 Hz, as in the paper)
    "drop_prob": 0.25,
}
BRAINNETCNN_DEFAULTS: dict[str, Any] = {
    "e2e": [32, 32],  # channels of the edge-to-edge layers
    "e2n": 64,
    "n2g": 256,
    "hidden": [128, 30],  # fully connected layers after node-to-graph
    "dropout": 0.5,
    "negative_slope": 0.33,  # leaky ReLU
}


# --------------------------------------------------------------------------------- features


def _map_rows(
    store_dir: str | Path,
    name: str,
    rows: Sequence[int] | np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray],
    chunk: int = CHUNK,
) -> np.ndarray:
    """``transform`` of the samples at ``rows`` of ``samples.h5:/name``, read in chunks."""
    rows = np.asarray(rows, dtype=np.int64)
    unique, inverse = np.unique(rows, return_inverse=True)
    with h5py.File(Path(store_dir) / "samples.h5", "r") as h5:
        if name not in h5:
            raise McspError(f"{store_dir}/samples.h5 has no dataset {name!r}: no such samples.")
        dset = h5[name]
        starts = range(0, len(unique), chunk) if len(unique) else [0]
        parts = [transform(_read(dset, unique[s : s + chunk])) for s in starts]
    return np.concatenate(parts)[inverse]


def _read(dset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """Rows of a dataset in the order given (any order, repeats allowed)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        return np.empty((0, *dset.shape[1:]), dtype=np.float32)
    unique, inverse = np.unique(rows, return_inverse=True)
    if unique[-1] - unique[0] < 2 * len(unique):  # nearly contiguous: one slice is faster
        block = dset[unique[0] : unique[-1] + 1][unique - unique[0]]
    else:
        block = dset[unique]
    return np.asarray(block, dtype=np.float32)[inverse]


def fc_features(store_dir: str | Path, rows: Sequence[int] | np.ndarray) -> np.ndarray:
    """Upper triangle (diagonal excluded) of fMRI FC for rows of the fMRI arrays.

    Returns:
        ``(len(rows), R (R - 1) / 2)`` float32, edges in ``numpy.triu_indices(R, 1)`` order.
    """

    def upper(block: np.ndarray) -> np.ndarray:
        i, j = np.triu_indices(block.shape[-1], k=1)
        return block[:, i, j]

    return _map_rows(store_dir, "fmri/spatial", rows, upper)


def band_power_features(
    store_dir: str | Path,
    rows: Sequence[int] | np.ndarray,
    bands: Mapping[str, Sequence[float]] | None = None,
) -> np.ndarray:
    """Mean log10 power per channel and band from the EEG frequency domain.

    Args:
        store_dir: the store.
        rows: rows of the EEG arrays.
        bands: ``{name: (low, high)}`` in Hz (default :data:`EEG_BANDS`: delta 1–4, theta 4–8,
            alpha 8–13, beta 13–30, gamma 30–45 Hz). A band holds the grid frequencies
            ``low <= f < high``, and ``f == high`` too where no band starts at ``high`` (so 45 Hz
            is gamma's, 13 Hz beta's).

    Returns:
        ``(len(rows), channels × bands)`` float32, channel-major (all bands of channel 0 first).

    Raises:
        McspError: a band holds no frequency of the store's grid.
    """
    bands = dict(EEG_BANDS if bands is None else bands)
    meta = json.loads((Path(store_dir) / "store.json").read_text())
    freqs = np.asarray(meta["eeg_frequencies_hz"], dtype=float)
    starts = {float(low) for low, _ in bands.values()}
    masks = []
    for name, (low, high) in bands.items():
        mask = (freqs >= low) & ((freqs < high) | ((freqs == high) & (float(high) not in starts)))
        if not mask.any():
            raise McspError(
                f"EEG band {name} ({low}–{high} Hz) holds no frequency of the store's grid "
                f"({freqs.min():.1f}–{freqs.max():.1f} Hz, {len(freqs)} bins): change the band or "
                "study.eeg_frequency_range."
            )
        masks.append(mask)

    def power(block: np.ndarray) -> np.ndarray:
        per_band = np.stack([block[:, :, m].mean(axis=2) for m in masks], axis=2)
        return per_band.reshape(len(block), -1).astype(np.float32)

    return _map_rows(store_dir, "eeg/frequency", rows, power)


# ----------------------------------------------------------------------------------- models


class EdgeToEdge(nn.Module):
    """E2E: ``out[i, j] = Σ_k r_k A[i, k] + c_k A[k, j]`` (a row and a column filter, cross)."""

    def __init__(self, c_in: int, c_out: int, n_nodes: int) -> None:
        super().__init__()
        self.row = nn.Conv2d(c_in, c_out, (1, n_nodes))
        self.col = nn.Conv2d(c_in, c_out, (n_nodes, 1), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.row(x) + self.col(x)  # (B, C, n, 1) + (B, C, 1, n) -> (B, C, n, n)


class EdgeToNode(nn.Module):
    """E2N: ``out[i] = Σ_k r_k A[i, k] + c_k A[k, i]``; output ``(B, C, n, 1)``."""

    def __init__(self, c_in: int, c_out: int, n_nodes: int) -> None:
        super().__init__()
        self.row = nn.Conv2d(c_in, c_out, (1, n_nodes))
        self.col = nn.Conv2d(c_in, c_out, (n_nodes, 1), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.row(x) + self.col(x).transpose(2, 3)


class BrainNetCNN(nn.Module):
    """BrainNetCNN (Kawahara et al. 2017, NeuroImage 146): E2E → E2N → N2G → dense layers.

    Input: connectivity matrices ``(B, n_nodes, n_nodes)`` or ``(B, 1, n_nodes, n_nodes)``;
    output: class logits ``(B, n_outputs)``. Leaky ReLU after every layer, dropout after E2N,
    N2G and each hidden dense layer, as in the paper.
    """

    def __init__(
        self,
        n_nodes: int,
        n_outputs: int,
        e2e: Sequence[int] = (32, 32),
        e2n: int = 64,
        n2g: int = 256,
        hidden: Sequence[int] = (128, 30),
        dropout: float = 0.5,
        negative_slope: float = 0.33,
    ) -> None:
        super().__init__()
        act = nn.LeakyReLU(negative_slope)
        layers: list[nn.Module] = []
        channels = 1
        for width in e2e:
            layers += [EdgeToEdge(channels, width, n_nodes), act]
            channels = width
        layers += [EdgeToNode(channels, e2n, n_nodes), act, nn.Dropout(dropout)]
        layers += [nn.Conv2d(e2n, n2g, (n_nodes, 1)), act, nn.Dropout(dropout), nn.Flatten()]
        width = n2g
        for size in hidden:
            layers += [nn.Linear(width, size), act, nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x if x.dim() == 4 else x.unsqueeze(1))


def _eegnet(shape: Sequence[int], n_outputs: int, meta: Mapping, cfg: Mapping) -> nn.Module:
    """braindecode's EEGNet (v4) for ``channels × n_times`` segments at the store's rate."""
    from braindecode import models

    n_chans, n_times = int(shape[0]), int(shape[1])
    if n_times < 32:
        raise McspError(
            f"EEGNet needs 32 or more time points per segment (it pools by 4 then 8); the "
            f"store has {n_times}: raise study.eeg_temporal_length."
        )
    sfreq = n_times / float(meta["study"]["eeg_segment_s"])
    eegnet = getattr(models, "EEGNet", None) or models.EEGNetv4
    return eegnet(
        n_chans=n_chans,
        n_outputs=n_outputs,
        n_times=n_times,
        sfreq=sfreq,
        F1=int(cfg["F1"]),
        D=int(cfg["D"]),
        F2=int(cfg["F1"]) * int(cfg["D"]),
        kernel_length=max(2, int(round(cfg["kernel_s"] * sfreq))),
        drop_prob=float(cfg["drop_prob"]),
    )


def _brainnetcnn(shape: Sequence[int], n_outputs: int, meta: Mapping, cfg: Mapping) -> nn.Module:
    return BrainNetCNN(
        int(shape[0]),
        n_outputs,
        e2e=[int(w) for w in cfg["e2e"]],
        e2n=int(cfg["e2n"]),
        n2g=int(cfg["n2g"]),
        hidden=[int(w) for w in cfg["hidden"]],
        dropout=float(cfg["dropout"]),
        negative_slope=float(cfg["negative_slope"]),
    )


def _logreg(c: float, cfg: Mapping, seed: int) -> Pipeline:
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=c, class_weight="balanced", max_iter=int(cfg["max_iter"]), random_state=seed
        ),
    )


def _svm(c: float, cfg: Mapping, seed: int) -> Pipeline:
    return make_pipeline(
        StandardScaler(),
        LinearSVC(C=c, class_weight="balanced", max_iter=int(cfg["max_iter"]), random_state=seed),
    )


@dataclass(frozen=True)
class Baseline:
    """A baseline: the modality it needs, how it is fitted and its settings' defaults.

    Attributes:
        modality: ``fmri`` or ``eeg``.
        kind: ``sklearn`` (features + estimator, C by grid search) or ``deep`` (torch network).
        description: one line for reports.
        defaults: settings accepted by :func:`run_baseline` and their defaults.
        features: sklearn: ``(store_dir, rows, settings) -> (n, d)`` features.
        estimator: sklearn: ``(C, settings, seed) -> Pipeline``.
        dataset: deep: the ``samples.h5`` dataset fed to the network.
        network: deep: ``(sample shape, n_outputs, store.json, settings) -> nn.Module``.
    """

    modality: str
    kind: str
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    features: Callable[..., np.ndarray] | None = None
    estimator: Callable[..., Pipeline] | None = None
    dataset: str | None = None
    network: Callable[..., nn.Module] | None = None


BASELINES: dict[str, Baseline] = {
    "fc_logreg": Baseline(
        "fmri",
        "sklearn",
        "fMRI FC upper triangle + L2 logistic regression",
        SKLEARN_DEFAULTS,
        features=lambda store, rows, cfg: fc_features(store, rows),
        estimator=_logreg,
    ),
    "fc_svm": Baseline(
        "fmri",
        "sklearn",
        "fMRI FC upper triangle + linear SVM (sigmoid of the decision function)",
        SKLEARN_DEFAULTS,
        features=lambda store, rows, cfg: fc_features(store, rows),
        estimator=_svm,
    ),
    "bandpower_logreg": Baseline(
        "eeg",
        "sklearn",
        "EEG log band power per channel + L2 logistic regression",
        {**SKLEARN_DEFAULTS, "bands": EEG_BANDS},
        features=lambda store, rows, cfg: band_power_features(store, rows, cfg["bands"]),
        estimator=_logreg,
    ),
    "eegnet": Baseline(
        "eeg",
        "deep",
        "braindecode EEGNet (v4) on the EEG temporal domain",
        {**DEEP_DEFAULTS, **EEGNET_DEFAULTS},
        dataset="eeg/temporal",
        network=_eegnet,
    ),
    "brainnetcnn": Baseline(
        "fmri",
        "deep",
        "BrainNetCNN on fMRI FC matrices",
        {**DEEP_DEFAULTS, **BRAINNETCNN_DEFAULTS},
        dataset="fmri/spatial",
        network=_brainnetcnn,
    ),
}


# ------------------------------------------------------------------------------- selection


def _subject_auroc(frame: pd.DataFrame) -> float:
    subjects = subject_scores(frame)
    columns = [c for c in subjects.columns if c.startswith("score")]
    score = subjects[columns[0]] if columns == ["score"] else subjects[columns].to_numpy()
    return auroc(subjects["y"], score)


def _subject_log_loss(frame: pd.DataFrame, n_classes: int) -> float:
    subjects = subject_scores(frame)
    columns = [c for c in subjects.columns if c.startswith("score")]
    probs = subjects[columns].to_numpy()
    probs = probs[:, 0] if probs.shape[1] == 1 else probs
    return float(log_loss(subjects["y"], probs, labels=list(range(n_classes))))


def _classes_in(y: np.ndarray, mask: np.ndarray) -> int:
    return len(np.unique(y[mask]))


# -------------------------------------------------------------------------------- sklearn


def _predict_sklearn(pipe: Pipeline, x: np.ndarray, n_classes: int) -> np.ndarray:
    if hasattr(pipe, "predict_proba"):
        probs = pipe.predict_proba(x)
        return probs[:, 1] if n_classes == 2 else probs
    decision = pipe.decision_function(x)
    return expit(decision) if n_classes == 2 else softmax(decision, axis=1)


def _fit(pipe: Pipeline, x: np.ndarray, y: np.ndarray, what: str) -> Pipeline:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        pipe.fit(x, y)
    for caught_warning in caught:
        if issubclass(caught_warning.category, ConvergenceWarning):
            log.warning("%s did not converge (raise max_iter in the baseline settings)", what)
        else:
            warnings.warn(caught_warning.message, caught_warning.category, stacklevel=2)
    return pipe


def _run_sklearn(
    spec: Baseline,
    store_dir: Path,
    samples: pd.DataFrame,
    y: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_classes: int,
    cfg: Mapping,
    seed: int,
) -> tuple[np.ndarray, dict]:
    train, val, test = masks
    x = spec.features(store_dir, samples["row"].to_numpy(dtype=np.int64), cfg)
    if cfg["harmonize"] not in ("none", "combat"):
        raise McspError(f"harmonize {cfg['harmonize']!r}: use none or combat.")

    def harmonised(fit: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features of the fitted and the scored samples, ComBat fitted on the former only."""
        if cfg["harmonize"] == "none":
            return x[fit], x[score]
        sites = samples["site"].to_numpy()
        combat = ComBat().fit(x[fit], sites[fit])
        return combat.transform(x[fit], sites[fit]), combat.transform(x[score], sites[score])

    by_auroc = _classes_in(y, val) > 1
    values = {}
    x_train, x_val = harmonised(train, val)
    for c in cfg["C_grid"]:
        pipe = _fit(spec.estimator(float(c), cfg, seed), x_train, y[train], f"C={c}")
        frame = prediction_frame(samples[val], y[val], _predict_sklearn(pipe, x_val, n_classes))
        values[float(c)] = (
            _subject_auroc(frame) if by_auroc else -_subject_log_loss(frame, n_classes)
        )
    finite = {c: v for c, v in values.items() if np.isfinite(v)}
    best = max(finite, key=lambda c: (finite[c], -c)) if finite else float(cfg["C_grid"][0])
    fit_on = train | val
    x_fit, x_test = harmonised(fit_on, test)
    pipe = _fit(spec.estimator(best, cfg, seed), x_fit, y[fit_on], f"refit C={best}")
    info = {
        "hyperparameters": {"C": best},
        "selection": {
            "criterion": "subject_auroc" if by_auroc else "-subject_log_loss",
            "values": {str(c): v for c, v in values.items()},
        },
        "n_features": int(x.shape[1]),
        "harmonize": cfg["harmonize"],
    }
    return _predict_sklearn(pipe, x_test, n_classes), info


# ----------------------------------------------------------------------------------- deep


def _logits(net: nn.Module, read: Callable, rows: np.ndarray, batch_size: int) -> torch.Tensor:
    net.eval()
    with torch.no_grad():
        parts = [
            net(torch.from_numpy(read(rows[s : s + batch_size])))
            for s in range(0, len(rows), batch_size)
        ]
    return torch.cat(parts)


def _run_deep(
    spec: Baseline,
    store_dir: Path,
    samples: pd.DataFrame,
    y: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    n_classes: int,
    cfg: Mapping,
    seed: int,
) -> tuple[np.ndarray, dict]:
    train, val, test = masks
    meta = json.loads((store_dir / "store.json").read_text())
    rows = samples["row"].to_numpy(dtype=np.int64)
    batch_size, patience = int(cfg["batch_size"]), int(cfg["patience"])
    by_auroc = n_classes == 2 and _classes_in(y, val) > 1
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    with h5py.File(store_dir / "samples.h5", "r") as h5:
        dset = h5[spec.dataset]
        net = spec.network(dset.shape[1:], n_classes, meta, cfg)

        def read(batch: np.ndarray) -> np.ndarray:
            return _read(dset, batch)

        weights = compute_class_weight("balanced", classes=np.arange(n_classes), y=y[train])
        loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))
        optimiser = torch.optim.Adam(
            net.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"])
        )
        train_rows, train_y = rows[train], torch.from_numpy(y[train])
        val_y = torch.from_numpy(y[val])
        n_batches = -(-len(train_rows) // batch_size)
        stopping, history = EarlyStopping(patience), []
        for epoch in range(int(cfg["epochs"])):
            net.train()
            total = 0.0
            # near-equal batches: never a lone sample (BatchNorm needs two)
            for batch in np.array_split(rng.permutation(len(train_rows)), n_batches):
                optimiser.zero_grad()
                loss = loss_fn(net(torch.from_numpy(read(train_rows[batch]))), train_y[batch])
                loss.backward()
                optimiser.step()
                total += loss.item() * len(batch)
            logits = _logits(net, read, rows[val], batch_size)
            val_loss = float(nn.functional.cross_entropy(logits, val_y))
            frame = prediction_frame(samples[val], y[val], class_probabilities(logits, n_classes))
            # AUROC saturates on a few subjects: the validation loss breaks its ties
            value = (_subject_auroc(frame), -val_loss) if by_auroc else (-val_loss,)
            history.append(
                {"epoch": epoch, "train_loss": total / len(train_rows), "val_loss": val_loss}
            )
            if stopping.step(epoch, value, net):
                break
        stopping.restore(net)
        scores = class_probabilities(_logits(net, read, rows[test], batch_size), n_classes)
    info = {
        "hyperparameters": {k: cfg[k] for k in spec.defaults},
        "selection": stopping.selection(
            "subject_auroc, then -val_loss" if by_auroc else "-val_loss", len(history)
        ),
        "history": history,
    }
    return scores, info


# ------------------------------------------------------------------------------------ run


def _settings(model: str, spec: Baseline, settings: Mapping | None) -> dict[str, Any]:
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(spec.defaults))
    if unknown:
        raise McspError(
            f"baseline {model}: unknown settings {', '.join(unknown)} (accepted: "
            f"{', '.join(spec.defaults)})."
        )
    return {**copy.deepcopy(dict(spec.defaults)), **settings}


def run_baseline(
    store_dir: str | Path,
    model: str,
    task: str,
    test_fold: int,
    seed: int = 0,
    settings: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Fit one baseline on one outer fold and score that fold's test samples.

    Args:
        store_dir: the store (:func:`mcsp.store.build_store`).
        model: a key of :data:`BASELINES`.
        task: a label column of the store (e.g. ``ASD``).
        test_fold: the outer fold scored; the next fold is the validation fold
            (:func:`mcsp.evaluate.evaluation_split`).
        seed: seeds the estimators, torch (``torch.manual_seed``) and batch shuffling.
        settings: overrides of the model's defaults (``BASELINES[model].defaults``: the C grid
            and ``max_iter`` for scikit-learn baselines, :data:`DEEP_DEFAULTS` plus the
            architecture for deep ones).

    Returns:
        One row per test-fold sample of the model's modality: ``cohort, subject, sample_id, y``
        (class 0 … C-1), ``score`` (binary: probability of class 1) or ``score_0 … score_{C-1}``,
        and ``split = "test"``. ``attrs`` holds model, task, folds, seed, modality, classes (the
        label values of classes 0 … C-1), the chosen hyperparameters and the selection record.

    Raises:
        McspError: unknown model or settings, no samples of the modality, a missing label,
            a split without samples or a training set lacking a class.
    """
    if model not in BASELINES:
        raise McspError(f"unknown baseline {model!r}: use one of {', '.join(BASELINES)}.")
    spec = BASELINES[model]
    cfg = _settings(model, spec, settings)
    store_dir = Path(store_dir)
    index = read_store_table(store_dir, "index")
    n_folds = int(index["fold"].max()) + 1
    samples = index[index["modality"] == spec.modality]
    if samples.empty:
        raise McspError(
            f"{store_dir}: no {spec.modality} samples, which baseline {model} needs; build the "
            f"store from cohorts with {spec.modality} data or pick another baseline."
        )
    samples = labelled(samples, task).reset_index(drop=True)
    classes = sorted(int(v) for v in samples[task].unique())
    y = np.searchsorted(classes, samples[task].to_numpy(dtype=np.int64)).astype(np.int64)
    masks = evaluation_split(samples["fold"], test_fold, n_folds)
    val_fold = (test_fold + 1) % n_folds
    for name, mask in zip(("training", "validation", "test"), masks, strict=True):
        if not mask.any():
            raise McspError(
                f"baseline {model}, task {task}, test fold {test_fold}: the {name} folds hold no "
                f"labelled {spec.modality} sample; use fewer folds or more subjects."
            )
    if _classes_in(y, masks[0]) < len(classes):
        raise McspError(
            f"baseline {model}, task {task}, test fold {test_fold}: the training folds hold "
            f"classes {sorted(classes[k] for k in np.unique(y[masks[0]]))} of {classes}; "
            "use fewer folds or more subjects."
        )
    run = _run_sklearn if spec.kind == "sklearn" else _run_deep
    scores, info = run(spec, store_dir, samples, y, masks, len(classes), cfg, seed)
    out = prediction_frame(samples[masks[2]], y[masks[2]], scores)
    out["split"] = "test"
    out.attrs = {
        "model": model,
        "task": task,
        "test_fold": int(test_fold),
        "validation_fold": int(val_fold),
        "n_folds": n_folds,
        "seed": int(seed),
        "modality": spec.modality,
        "classes": classes,
        **info,
    }
    log.info(
        "baseline %s, task %s, test fold %d: %s, %d test samples",
        model,
        task,
        test_fold,
        info["hyperparameters"] if spec.kind == "sklearn" else info["selection"],
        len(out),
    )
    return out
