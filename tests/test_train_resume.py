"""Resuming pretraining: a checkpoint belongs to the store it was trained on."""

from __future__ import annotations

from pathlib import Path

from mcsp.config import validate
from mcsp.store import build_store
from mcsp.train import pretrain

from .test_train import STUDY, _build, _config


def test_checkpoint_of_another_store_is_not_resumed(tmp_path: Path) -> None:
    """A store rebuilt with other settings (here shorter EEG series, so other weight shapes)
    starts afresh instead of failing to load the old checkpoint; the same store rebuilt resumes."""
    out = tmp_path / "pretrain"
    store = _build(tmp_path)
    done = pretrain(store, out, _config(epochs=1))
    config = validate({"cohorts": ["p"], "study": STUDY}, "config", "test")
    build_store(config, tmp_path / "results", store)
    assert pretrain(store, out, _config(epochs=2))["resumed_from"] == done["steps"]

    shorter = validate(
        {"cohorts": ["p"], "study": {**STUDY, "eeg_temporal_length": 32}}, "config", "test"
    )
    build_store(shorter, tmp_path / "results", store)
    summary = pretrain(store, out, _config(epochs=1))
    assert summary["resumed_from"] is None and summary["steps"] > 0
