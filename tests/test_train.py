"""Pretraining on a small store: the loss falls, seeds reproduce, a killed job resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from mcsp.config import validate
from mcsp.exceptions import ConfigError, McspError
from mcsp.store import PairDataset, build_store
from mcsp.train import (
    embed,
    epoch_batches,
    load_pretrained,
    pretrain,
    resolve_device,
    split_subjects,
)

from .test_store import write_cohort

MODEL = {
    "hidden": 16,
    "proj_dim": 8,
    "graph": {"layers": 1, "heads": 2, "pe_dim": 4},
    "sequence": {"layers": 1, "heads": 2, "patches": 4},
}
PRETRAIN = {
    "batch_size": 8,
    "epochs": 4,
    "lr": 0.003,
    "warmup_steps": 2,
    "num_workers": 0,
    "log_every": 1,
    "checkpoint_every": 2,
    "val_fraction": 0.2,
    "seed": 5,
    "device": "cpu",  # same seed, same numbers: promised on CPU (GPU kernels may reorder sums)
}
STUDY = {
    "fmri_window": 20,
    "fmri_stride": 10,
    "eeg_segment_s": 2.0,
    "eeg_stride_s": 2.0,
    "eeg_temporal_length": 64,
    "eeg_frequency_bins": 20,
    "fmri_frequency_bins": 8,
    "max_pairs_per_subject": 6,
    "folds": 2,
    "stratify_label": "ASD",
}


def _config(**pretrain) -> dict:
    return {"model": MODEL, "pretrain": {**PRETRAIN, **pretrain}}


def _build(root: Path, eeg: bool = True, **study: object) -> Path:
    subjects = {
        f"{i:02d}": {
            "site": f"S{i % 2}",
            "ASD": i % 2,
            "fmri": [("1", 40, 2.0, False)],
            "eeg": [("1", "eyesopen", 8, [])] if eeg else [],
        }
        for i in range(10)
    }
    write_cohort(root / "results", "p", subjects, rois=8)
    config = validate({"cohorts": ["p"], "study": {**STUDY, **study}}, "config", "test")
    build_store(config, root / "results", root / "store")
    return root / "store"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("pretrain"))


def _losses(out: Path, split: str = "train") -> pd.DataFrame:
    table = pd.read_csv(out / "metrics.csv")
    return table[table["split"] == split].reset_index(drop=True)


def test_pretraining_lowers_the_loss(store: Path, tmp_path: Path) -> None:
    summary = pretrain(store, tmp_path, _config(epochs=12))
    train = _losses(tmp_path)
    assert summary["steps"] == len(train) == summary["total_steps"]
    # about 0.7 on most draws of the test store (its data depend on PYTHONHASHSEED); 0.81 seen once
    assert train["total"].tail(5).mean() < 0.9 * train["total"].head(5).mean()
    for column in ("contrastive/fmri/spatial", "contrastive/eeg/temporal", "distillation/spatial"):
        assert train[column].notna().all() and (train[column] > 0).all()
    assert (train["consistency"] > 0).all() and (train["pairs_both"] == 8).all()
    for name in ("model.pt", "best.pt", "checkpoint.pt", "summary.json"):
        assert (tmp_path / name).is_file()
    assert any((tmp_path / "tensorboard").iterdir())
    model = load_pretrained(tmp_path / "model.pt")
    assert model.modalities == ("fmri", "eeg") and not model.training
    samples, vectors = embed(model, store, "eeg")
    assert vectors.shape == (len(samples), MODEL["hidden"]) and set(samples["modality"]) == {"eeg"}
    again = embed(model, store, "eeg", batch_size=3)[1]
    assert abs(vectors - again).max() < 1e-5


def test_same_seed_same_losses(store: Path, tmp_path: Path) -> None:
    runs = [pretrain(store, tmp_path / f"run{k}", _config(epochs=1)) for k in range(2)]
    assert runs[0]["final_loss"] == runs[1]["final_loss"]
    pd.testing.assert_frame_equal(_losses(tmp_path / "run0"), _losses(tmp_path / "run1"))
    other = pretrain(store, tmp_path / "other", _config(epochs=1, seed=6))
    assert other["final_loss"] != runs[0]["final_loss"]


def test_validation_subjects_held_out(store: Path) -> None:
    pairs = pd.read_csv(store / "pairs.tsv", sep="\t", dtype=str)
    train, val = split_subjects(pairs, 0.2, seed=1)
    assert not set(pairs["subject"][train]) & set(pairs["subject"][val])
    assert pairs["subject"][val].nunique() == 2
    batches = epoch_batches(len(pairs), 8, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b)[: len(pairs) - len(pairs) % 8 or None]
    assert epoch_batches(len(pairs), 8, 1, 0) == batches != epoch_batches(len(pairs), 8, 1, 1)


def test_killed_job_resumes_on_the_same_curve(store: Path, tmp_path: Path) -> None:
    """SIGKILL a pretraining process after a checkpoint; the rerun continues the step count and
    reproduces the uninterrupted run's loss curve exactly."""
    config = _config(epochs=10)
    reference = pretrain(store, tmp_path / "reference", config)
    out = tmp_path / "killed"
    script = (
        "import json, sys, torch; from mcsp.train import pretrain; "
        f"torch.set_num_threads({torch.get_num_threads()}); "
        f"pretrain({str(store)!r}, {str(out)!r}, json.loads(sys.argv[1]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(config)])
    deadline = time.monotonic() + 120
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        ckpt = out / "checkpoint.pt"
        if ckpt.is_file():
            step = torch.load(ckpt, weights_only=False)["step"]
            if step >= 6:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_at is not None, "the job finished or stalled before it could be killed"
    assert not (out / "model.pt").exists()
    resumed = pretrain(store, out, config)
    assert resumed["resumed_from"] >= killed_at
    assert resumed["steps"] == reference["steps"]
    pd.testing.assert_frame_equal(_losses(out), _losses(tmp_path / "reference"))
    pd.testing.assert_frame_equal(_losses(out, "val"), _losses(tmp_path / "reference", "val"))


def test_changed_settings_start_afresh(store: Path, tmp_path: Path) -> None:
    pretrain(store, tmp_path, _config(epochs=1))
    summary = pretrain(store, tmp_path, _config(epochs=1, lr=0.001))
    assert summary["resumed_from"] is None
    extended = pretrain(store, tmp_path, _config(epochs=2, lr=0.001))
    assert extended["resumed_from"] == summary["steps"]


def test_fmri_only_store(tmp_path: Path) -> None:
    store = _build(tmp_path, eeg=False)
    summary = pretrain(store, tmp_path / "out", _config(epochs=2))
    train = _losses(tmp_path / "out")
    assert summary["steps"] > 0 and train["distillation"].isna().all()
    assert train["contrastive/fmri/temporal"].notna().all()
    assert load_pretrained(tmp_path / "out" / "model.pt").modalities == ("fmri",)


def test_ddp_two_processes_on_cpu(store: Path, tmp_path: Path) -> None:
    """torchrun with two CPU processes (gloo): each takes half the batches, rank 0 writes."""
    import yaml

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(epochs=2)))
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "-m", "mcsp.cli", "pretrain", str(store),
         "--out", str(tmp_path / "out"), "--config", str(config), "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    single = pretrain(store, tmp_path / "single", _config(epochs=2))
    assert summary["processes"] == 2 and summary["steps"] == single["steps"] // 2
    assert len(_losses(tmp_path / "out")) == summary["steps"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pretraining_on_cuda_with_bfloat16(store: Path, tmp_path: Path) -> None:
    """On a GPU: autocast to bfloat16 trains, the checkpoint resumes there and loads on a CPU."""
    summary = pretrain(store, tmp_path, _config(epochs=12, device="cuda", amp=True))
    train = _losses(tmp_path)
    assert summary["device"].startswith("cuda") and summary["steps"] == len(train)
    assert train["total"].tail(5).mean() < 0.9 * train["total"].head(5).mean()
    extended = pretrain(store, tmp_path, _config(epochs=14, device="cuda", amp=True))
    assert extended["resumed_from"] == summary["steps"] and extended["steps"] > summary["steps"]
    model = load_pretrained(tmp_path / "model.pt")
    assert next(model.parameters()).device.type == "cpu"
    samples, vectors = embed(model, store, "fmri")
    assert vectors.shape == (len(samples), MODEL["hidden"])
    assert torch.isfinite(torch.as_tensor(vectors)).all()


def test_device_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ConfigError, match="nproc_per_node 1"):
        resolve_device("auto")


def test_validation_batches_mix_subjects(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation batches are shuffled like training ones: a batch of one subject's pairs would
    make every negative a near-copy and the loss meaningless."""
    import mcsp.train as train

    seen: list[list[str]] = []

    def record(model, batch, settings, device, seed):  # noqa: ANN001, ANN202
        seen.append(batch["pair_id"])
        return torch.tensor(1.0), {}

    monkeypatch.setattr(train, "batch_loss", record)
    dataset = PairDataset(store)
    subject = dict(zip(dataset.pairs["pair_id"], dataset.pairs["subject"], strict=True))
    assert train._validate(torch.nn.Linear(1, 1), dataset, 6, {"seed": 0}, torch.device("cpu")) == 1
    mixed = [len({subject[p] for p in batch}) for batch in seen]
    assert sum(mixed) / len(mixed) > 2, mixed


def _record_pairs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pair ids of every batch pretraining computes a loss on (training and validation)."""
    import mcsp.train as train

    seen: list[str] = []
    real = train.batch_loss

    def record(model, batch, settings, device, seed):  # noqa: ANN001, ANN202
        seen.extend(batch["pair_id"])
        return real(model, batch, settings, device, seed)

    monkeypatch.setattr(train, "batch_loss", record)
    return seen


def test_train_folds_pretraining_never_sees_the_test_fold(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pretrain.scope train_folds: the pretraining of test fold K excludes fold K. Every pair that
    reaches a training or validation batch is recorded; none belongs to a fold-K subject."""
    seen = _record_pairs(monkeypatch)
    pairs = pd.read_csv(store / "pairs.tsv", sep="\t", dtype=str)
    fold_of = dict(zip(pairs["pair_id"], pairs["fold"].astype(int), strict=True))
    subject_of = dict(zip(pairs["pair_id"], pairs["subject"], strict=True))
    for fold in (0, 1):
        seen.clear()
        out = tmp_path / f"fold-{fold}"
        summary = pretrain(store, out, _config(epochs=2, exclude_folds=[fold]))
        assert seen and all(fold_of[p] != fold for p in seen)
        test_subjects = set(pairs.loc[pairs["fold"].astype(int) == fold, "subject"])
        assert not {subject_of[p] for p in seen} & test_subjects
        audit = pd.read_csv(out / "subjects.tsv", sep="\t", dtype=str)
        assert not set(audit["subject"]) & test_subjects
        assert set(audit["subject"]) == set(pairs["subject"]) - test_subjects
        assert summary["exclude_folds"] == [fold] and summary["subjects"] == len(audit)


def test_masked_node_reconstruction_term(store: Path, tmp_path: Path) -> None:
    """weights.reconstruction > 0: the masked-node term is logged, falls, and survives a resume;
    model.pt holds the encoders only (fine-tuning loads it as before)."""
    config = _config(epochs=6, weights={"reconstruction": 1.0}, mask_ratio=0.3)
    summary = pretrain(store, tmp_path, config)
    train = _losses(tmp_path)
    for column in ("reconstruction", "reconstruction/fmri", "reconstruction/eeg"):
        assert train[column].notna().all() and (train[column] > 0).all()
    assert train["reconstruction"].tail(3).mean() < train["reconstruction"].head(3).mean()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert set(state["decoders"]) == {"fmri.weight", "fmri.bias", "eeg.weight", "eeg.bias"}
    assert not any(k.startswith("decoders") for k in torch.load(tmp_path / "model.pt")["model"])
    load_pretrained(tmp_path / "model.pt")
    extended = pretrain(
        store, tmp_path, {**config, "pretrain": {**config["pretrain"], "epochs": 7}}
    )
    assert extended["resumed_from"] == summary["steps"]
    off = pretrain(store, tmp_path / "off", _config(epochs=1))
    assert _losses(tmp_path / "off")["reconstruction"].isna().all() and off["steps"] > 0


def test_pair_kinds_choose_the_pretraining_pairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pretrain.pairs: natural only reads no cross-matched pair; a kind the store lacks errs."""
    subjects = {
        f"{i:02d}": {
            "site": "S0",
            "ASD": i % 2,
            "fmri": [("1", 40, 2.0, False), ("2", 40, 2.0, False)],
            "eeg": [("1", "eyesopen", 8, []), ("2", "eyesopen", 8, [])],
        }
        for i in range(6)
    }
    write_cohort(tmp_path / "results", "p", subjects, rois=8)
    config = validate({"cohorts": ["p"], "study": STUDY}, "config", "test")
    build_store(config, tmp_path / "results", tmp_path / "store")
    pairs = pd.read_csv(tmp_path / "store" / "pairs.tsv", sep="\t", dtype=str)
    kind_of = dict(zip(pairs["pair_id"], pairs["kind"], strict=True))
    assert {"natural", "cross"} <= set(kind_of.values())
    seen = _record_pairs(monkeypatch)
    pretrain(tmp_path / "store", tmp_path / "natural", _config(epochs=1, pairs=["natural"]))
    assert seen and {kind_of[p] for p in seen} == {"natural"}
    with pytest.raises(McspError, match=r"pretrain.pairs \['eeg_only'\]"):
        pretrain(tmp_path / "store", tmp_path / "none", _config(epochs=1, pairs=["eeg_only"]))
