"""Outputs are written under a temporary name and renamed; a full disk is named as such."""

from __future__ import annotations

import errno
from pathlib import Path

import pandas as pd
import pytest

from mcsp.io import DiskFullError, atomic_output, write_text
from mcsp.logs import log_to


def _fill_then_fail(path: Path) -> None:
    path.write_text("partial")
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_output_appears_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "table.tsv"
    with atomic_output(out) as tmp:
        assert tmp.parent == out.parent and tmp.suffix == ".tsv" and tmp != out
        pd.DataFrame({"a": [1]}).to_csv(tmp, sep="\t", index=False)
        assert not out.exists()
    assert out.read_text() == "a\n1\n"
    assert write_text(out, "b\n").read_text() == "b\n"  # replaces
    assert sorted(p.name for p in out.parent.iterdir()) == ["table.tsv"]


def test_disk_full_leaves_nothing_and_names_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "results" / "inventory.tsv"
    with pytest.raises(DiskFullError) as info, atomic_output(out) as tmp:
        _fill_then_fail(tmp)
    message = str(info.value)
    assert str(out.parent.resolve()) in message and "no space left" in message
    assert "inventory.tsv" in message and "MB free" in message and "rerun" in message
    assert list(out.parent.iterdir()) == []  # no partial, no 0-byte file


def test_other_errors_pass_through_and_clean_up(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    with pytest.raises(PermissionError), atomic_output(out) as tmp:
        tmp.write_text("{")
        raise PermissionError(errno.EACCES, "denied")
    with pytest.raises(ValueError), atomic_output(out) as tmp:
        tmp.write_text("{")
        raise ValueError("bad value")
    assert list(tmp_path.iterdir()) == []


def test_rule_log_reports_a_full_disk(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "step.log"
    target = tmp_path / "out" / "samples.h5"
    with pytest.raises(DiskFullError, match=str(target.parent)), log_to(log):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))
    text = log.read_text()
    assert "no space left on the device" in text and "Traceback" not in text.split("ERROR")[-1]


def test_full_disk_in_eeg_cleaning_leaves_no_partial_fif(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clean FIF of a real-shaped recording (19 channels, 128 Hz, 60 s) on a full disk."""
    import mne
    import numpy as np

    from mcsp.eeg import EegResult, write_clean

    info = mne.create_info([f"E{i}" for i in range(19)], 128.0, "eeg")
    raw = mne.io.RawArray(np.random.default_rng(0).normal(size=(19, 128 * 60)) * 1e-5, info)
    result = EegResult(source="sub-01_task-rest_eeg.edf", raw=raw, sidecar={"status": "ok"})
    out = tmp_path / "eeg" / "sub-01_desc-clean_eeg.fif"

    def save(self, fname, **kwargs) -> None:  # writes part of the file, then the disk is full
        Path(fname).write_bytes(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device", str(fname))

    monkeypatch.setattr(mne.io.BaseRaw, "save", save)
    with pytest.raises(DiskFullError, match="sub-01_desc-clean_eeg.fif"):
        write_clean(result, out, out.with_suffix(".json"))
    assert list(out.parent.iterdir()) == []
