"""The EEG ADHD benchmark's conversion to BIDS (benchmarks/bench_eeg_adhd.py) and its cohort file:
small MATLAB fixtures always, two real children when ../shared/data is present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat

from mcsp.bids import build_inventory
from mcsp.config import load_cohort
from mcsp.eeg import preprocess_recording

from .conftest import REPO, SHARED_DATA

REAL = SHARED_DATA / "eeg_adhd_children"
# the source folder's channel file: Number = data column
CED_ORDER = [
    (1, "Fp1"), (2, "Fp2"), (11, "F7"), (3, "F3"), (17, "Fz"), (4, "F4"), (12, "F8"), (13, "T7"),
    (5, "C3"), (18, "Cz"), (6, "C4"), (14, "T8"), (15, "P7"), (7, "P3"), (19, "Pz"), (8, "P4"),
    (16, "P8"), (9, "O1"), (10, "O2"),
]  # fmt: skip


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_eeg_adhd", REPO / "benchmarks" / "bench_eeg_adhd.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _source(folder: Path, children: dict[str, list[str]], seconds: float = 40.0) -> Path:
    """A folder laid out like eeg_adhd_children with small random int16 recordings."""
    rng = np.random.default_rng(0)
    lines = ["Number\tlabels\ttheta\tradius"] + [f"{n}\t{name}\t0\t0.5" for n, name in CED_ORDER]
    folder.mkdir(parents=True)
    (folder / "EEG_electrode_location_label.ced").write_text("\n".join(lines) + "\n")
    for group, stems in children.items():
        (folder / group).mkdir()
        for stem in stems:
            data = rng.normal(0, 30, (int(seconds * 128), 19)).astype(np.int16)
            savemat(folder / group / f"{stem}.mat", {stem: data})
    return folder


def _cohort(tmp_path: Path, root: Path) -> dict:
    text = (REPO / "config" / "cohorts" / "eegadhd.yaml").read_text()
    path = tmp_path / "eegadhd.yaml"
    path.write_text(text.replace("bids_root: resources/eeg_adhd", f"bids_root: {root}"))
    return load_cohort(path)


def test_channel_names_follow_the_number_column(tmp_path: Path) -> None:
    bench = _bench()
    source = _source(tmp_path / "src", {})
    names = bench.channel_names(source / "EEG_electrode_location_label.ced")
    assert names[:4] == ["Fp1", "Fp2", "F3", "F4"] and names[-3:] == ["Fz", "Cz", "Pz"]


def test_convert_writes_bids_once_and_the_cohort_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bench = _bench()
    source = _source(tmp_path / "src", {"ADHD": ["v1p", "v2_p"], "CONTROL": ["v107"]})
    root = tmp_path / "bids"
    assert bench.convert(source, root) == 3
    participants = pd.read_csv(root / "participants.tsv", sep="\t")
    assert dict(zip(participants["participant_id"], participants["diagnosis"], strict=True)) == {
        "sub-v107": "control",
        "sub-v1p": "ADHD",
        "sub-v2p": "ADHD",
    }
    assert set(participants["site"]) == {bench.SITE}
    capsys.readouterr()
    assert bench.convert(source, root) == 3
    assert "conversion skipped" in capsys.readouterr().out

    inventory = build_inventory(_cohort(tmp_path, root))
    table = inventory.table
    assert set(table["status"]) == {"ok"} and set(table["modality"]) == {"eeg"}
    assert set(table["task"]) == {"attention"}
    assert dict(zip(table["subject"], table["ADHD"], strict=True)) == {
        "v107": 0,
        "v1p": 1,
        "v2p": 1,
    }


def test_convert_refuses_clashing_subject_labels(tmp_path: Path) -> None:
    bench = _bench()
    source = _source(tmp_path / "src", {"ADHD": ["v1p"], "CONTROL": ["v_1p"]})
    with pytest.raises(ValueError, match="same subject v1p"):
        bench.convert(source, tmp_path / "bids")


def test_real_children_convert_and_clean(tmp_path: Path) -> None:
    if not (REAL / "ADHD").is_dir():
        pytest.skip(f"{REAL} not present (shared real data)")
    bench = _bench()
    source = tmp_path / "src"
    for group, stem in (("ADHD", "v10p"), ("CONTROL", "v107")):
        (source / group).mkdir(parents=True)
        (source / group / f"{stem}.mat").symlink_to(REAL / group / f"{stem}.mat")
    ced = "EEG_electrode_location_label.ced"
    (source / ced).symlink_to(REAL / ced)
    root = tmp_path / "bids"
    assert bench.convert(source, root) == 2
    vhdr = root / "sub-v10p" / "eeg" / "sub-v10p_task-attention_eeg.vhdr"
    result = preprocess_recording(vhdr, {"resample_sfreq": 128.0})
    assert result.exclusion is None
    assert result.raw.info["sfreq"] == 128.0 and len(result.raw.ch_names) == 19
    assert result.sidecar["duration_s"] > 60
