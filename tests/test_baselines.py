"""Baselines through the evaluation folds on a small store with a planted fMRI effect."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import mne
import numpy as np
import pandas as pd
import pytest
import torch

from mcsp.baselines import (
    BASELINES,
    DEEP_DEFAULTS,
    BrainNetCNN,
    band_power_features,
    fc_features,
    run_baseline,
)
from mcsp.eeg import CHANNEL_SETS
from mcsp.evaluate import binary_metrics, evaluation_split, subject_scores
from mcsp.exceptions import McspError
from mcsp.store import build_store, read_store_table

from .test_store import SFREQ, _config, write_cohort

N_SUBJECTS = 15  # labelled; one more subject has no ASD label
VOLUMES, ROIS, EEG_SECONDS = 50, 6, 8
TINY = {
    "sklearn": {},
    "eegnet": {"epochs": 3, "batch_size": 8, "F1": 4, "D": 1, "patience": 2},
    "brainnetcnn": {
        "epochs": 3,
        "batch_size": 8,
        "e2e": [4],
        "e2n": 8,
        "n2g": 16,
        "hidden": [8],
        "patience": 2,
    },
}


def _tiny(model: str) -> dict:
    return TINY.get(model, TINY["sklearn"])


def _plant(folder: Path, subjects: dict[str, dict]) -> None:
    """Seeded data in place of write_cohort's: ASD subjects' ROIs 0 and 1 share a signal, and
    their EEG carries a 10 Hz rhythm."""
    rng = np.random.default_rng(11)
    channels = CHANNEL_SETS["1020_19"]
    t = np.arange(int(EEG_SECONDS * SFREQ)) / SFREQ
    for sub, spec in subjects.items():
        asd = spec["ASD"] == 1
        ts = rng.normal(size=(VOLUMES, ROIS))
        if asd:
            ts[:, :2] += 3.0 * rng.normal(size=(VOLUMES, 1))
        path = folder / f"sub-{sub}_ses-1_task-rest_atlas-test_timeseries.tsv"
        header = "\t".join(f"roi{i}" for i in range(ROIS))
        np.savetxt(path, ts, fmt="%.6g", delimiter="\t", header=header, comments="")
        data = rng.normal(size=(len(channels), len(t)))
        if asd:
            data += 2.0 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 2 * np.pi))
        raw = mne.io.RawArray(data * 1e-5, mne.create_info(channels, SFREQ, "eeg"), verbose=False)
        raw.save(folder / f"sub-{sub}_ses-1_task-rest_desc-clean_eeg.fif", overwrite=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("baselines")
    subjects = {
        f"{i:02d}": {
            "site": "S1",
            "ASD": i % 2 if i < N_SUBJECTS else None,
            "severity": i % 3 if i < N_SUBJECTS else None,
            "fmri": [("1", VOLUMES, 2.0, False)],
            "eeg": [("1", "rest", EEG_SECONDS, [])],
        }
        for i in range(N_SUBJECTS + 1)
    }
    write_cohort(root / "results", "p", subjects, rois=ROIS, labels=("ASD", "severity"))
    _plant(root / "results" / "p", subjects)
    config = _config(["p"], folds=3, seed=1, eeg_frequency_bins=45, eeg_temporal_length=64)
    build_store(config, root / "results", root / "store")
    return root / "store"


def folds_of(store: Path) -> pd.DataFrame:
    return read_store_table(store, "index")[["cohort", "subject", "fold"]].drop_duplicates()


def test_evaluation_split_keeps_subjects_on_one_side(store: Path) -> None:
    index = read_store_table(store, "index")
    for test_fold in range(3):
        masks = evaluation_split(index["fold"], test_fold, 3)
        sides = [set(zip(index["cohort"][m], index["subject"][m], strict=True)) for m in masks]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
        assert sum(m.sum() for m in masks) == len(index)
        assert set(index["fold"][masks[2]]) == {test_fold}
        assert set(index["fold"][masks[1]]) == {(test_fold + 1) % 3}


def test_features_follow_the_rows(store: Path) -> None:
    index = read_store_table(store, "index")
    rows = [3, 0, 3, 5]
    fc = fc_features(store, rows)
    with h5py.File(store / "samples.h5") as h5:
        matrices = h5["fmri/spatial"][:]
        power = h5["eeg/frequency"][:]
    i, j = np.triu_indices(ROIS, k=1)
    assert fc.shape == (4, ROIS * (ROIS - 1) // 2)
    assert np.array_equal(fc, matrices[rows][:, i, j])
    freqs = np.asarray(json.loads((store / "store.json").read_text())["eeg_frequencies_hz"])
    n_eeg = int((index["modality"] == "eeg").sum())
    bp = band_power_features(store, np.arange(n_eeg))
    assert bp.shape == (n_eeg, 19 * 5)
    alpha = (freqs >= 8) & (freqs < 13)
    assert bp[2, 2] == pytest.approx(power[2, 0, alpha].mean(), rel=1e-6)  # channel 0, alpha
    gamma = (freqs >= 30) & (freqs <= 45)  # 45 Hz included: no band starts there
    assert bp[2, 5 + 4] == pytest.approx(power[2, 1, gamma].mean(), rel=1e-6)  # channel 1
    custom = band_power_features(store, [1, 0], {"low": (1, 10), "high": (10, 45)})
    assert custom.shape == (2, 38)
    with pytest.raises(McspError, match="band slow"):
        band_power_features(store, [0], {"slow": (0.1, 0.5)})


def test_every_baseline_scores_only_the_test_fold(store: Path) -> None:
    index = read_store_table(store, "index")
    for model, spec in BASELINES.items():
        out = run_baseline(store, model, "ASD", test_fold=0, seed=0, settings=_tiny(model))
        expected = index[
            (index["modality"] == spec.modality) & (index["fold"] == 0) & index["ASD"].notna()
        ]
        assert list(out.columns) == ["cohort", "subject", "sample_id", "y", "score", "split"]
        assert sorted(out["sample_id"]) == sorted(expected["sample_id"]), model
        assert "12" not in set(out["subject"])  # no ASD label
        assert (out["split"] == "test").all() and out["score"].between(0, 1).all()
        assert out.attrs["validation_fold"] == 1 and out.attrs["classes"] == [0, 1]
        assert out.attrs["hyperparameters"], model
        if spec.kind == "deep":
            assert out.attrs["selection"]["epochs_run"] <= 3


def test_fc_logreg_finds_the_planted_effect(store: Path) -> None:
    predictions = pd.concat(
        [run_baseline(store, "fc_logreg", "ASD", test_fold=k) for k in range(3)]
    )
    subjects = subject_scores(predictions)
    assert len(subjects) == N_SUBJECTS
    assert binary_metrics(subjects["y"], subjects["score"])["auroc"] > 0.8
    per_fold = [
        binary_metrics(s["y"], s["score"])["auroc"]
        for _, s in subjects.merge(folds_of(store)).groupby("fold")
    ]
    assert len(per_fold) == 3 and np.mean(per_fold) > 0.8


def test_deep_baselines_reproduce_with_a_seed(store: Path) -> None:
    for model in ("eegnet", "brainnetcnn"):
        runs = [
            run_baseline(store, model, "ASD", 1, seed=seed, settings=_tiny(model))
            for seed in (4, 4, 5)
        ]
        pd.testing.assert_frame_equal(runs[0], runs[1])
        assert runs[0].attrs["selection"] == runs[1].attrs["selection"]
        assert not np.array_equal(runs[0]["score"], runs[2]["score"]), model


def test_multiclass_label(store: Path) -> None:
    index = read_store_table(store, "index")
    subjects = index.drop_duplicates("subject")
    # a test fold whose training fold (the third one) holds all three severity classes
    fold = next(
        k
        for k in range(3)
        if subjects.loc[subjects["fold"] == (k + 2) % 3, "severity"].nunique() == 3
    )
    for model in ("fc_logreg", "brainnetcnn"):
        settings = {**_tiny(model), "epochs": 1} if model == "brainnetcnn" else None
        out = run_baseline(store, model, "severity", fold, settings=settings)
        scores = out[["score_0", "score_1", "score_2"]].to_numpy()
        assert np.allclose(scores.sum(axis=1), 1) and out.attrs["classes"] == [0, 1, 2]
        assert set(out["y"]) <= {0, 1, 2}


def test_refusals(store: Path) -> None:
    with pytest.raises(McspError, match="unknown baseline"):
        run_baseline(store, "resnet", "ASD", 0)
    with pytest.raises(McspError, match="unknown settings epoch"):
        run_baseline(store, "eegnet", "ASD", 0, settings={"epoch": 3})
    with pytest.raises(McspError, match=r"no label 'sex' \(labels: ASD, severity\)"):
        run_baseline(store, "fc_logreg", "sex", 0)
    assert set(DEEP_DEFAULTS) <= set(BASELINES["eegnet"].defaults)


def test_brainnetcnn_shapes() -> None:
    torch.manual_seed(0)
    net = BrainNetCNN(7, 3, e2e=[4, 4], e2n=5, n2g=6, hidden=[8]).eval()
    x = torch.randn(2, 7, 7)
    assert net(x).shape == (2, 3)
    assert torch.allclose(net(x), net(x.unsqueeze(1)))
