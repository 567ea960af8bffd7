"""The dataset store on small contract files: layout, exclusions, refusals, lazy reads, collate."""

from __future__ import annotations

import json
import tracemalloc
import zlib
from pathlib import Path

import h5py
import mne
import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from mcsp.bids import HEAD_COLUMNS
from mcsp.config import validate
from mcsp.eeg import CHANNEL_SETS
from mcsp.eeg import QC_COLUMNS as EEG_QC
from mcsp.exceptions import McspError
from mcsp.fmri import QC_COLUMNS as FMRI_QC
from mcsp.store import (
    PairDataset,
    build_store,
    collate_pairs,
    read_store_table,
    shared_recordings,
)

from .conftest import SHARED_DATA

SFREQ = 256.0
STUDY = {
    "fmri_window": 20,
    "fmri_stride": 10,
    "eeg_segment_s": 2.0,
    "eeg_stride_s": 2.0,
    "eeg_temporal_length": 64,
    "eeg_frequency_bins": 45,
    "fmri_frequency_bins": 8,
    "max_pairs_per_subject": 5,
    "folds": 2,
    "stratify_label": "ASD",
    "seed": 3,
}


def _fmri(folder: Path, stem: str, n: int, rois: int, tr: float | None, nan: bool) -> str:
    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    ts = rng.normal(size=(n, rois))
    if nan:
        ts[:, 0] = np.nan
    path = folder / f"{stem}_atlas-test_timeseries.tsv"
    header = "\t".join(f"roi{i}" for i in range(rois))
    np.savetxt(path, ts, fmt="%.6g", delimiter="\t", header=header, comments="")
    path.with_suffix(".json").write_text(json.dumps({"RepetitionTime": tr, "Atlas": "test"}))
    return str(path)


def _eeg(folder: Path, stem: str, seconds: float, bads: list[float], channels: list[str]) -> str:
    rng = np.random.default_rng(zlib.crc32(stem.encode()))
    info = mne.create_info(channels, SFREQ, "eeg")
    raw = mne.io.RawArray(rng.normal(size=(len(channels), int(seconds * SFREQ))) * 1e-5, info)
    raw.set_annotations(mne.Annotations(bads, [1.0] * len(bads), ["BAD_segment"] * len(bads)))
    path = folder / f"{stem}_desc-clean_eeg.fif"
    raw.save(path, overwrite=True, verbose="error")
    return str(path)


def write_cohort(
    root: Path,
    name: str,
    subjects: dict[str, dict],
    rois: int = 6,
    labels: tuple[str, ...] = ("ASD",),
    channels: list[str] | None = None,
    atlas: str = "test",
) -> None:
    """Contract files of a cohort: inventory.tsv, fmri_qc.tsv and (when any) eeg_qc.tsv.

    ``subjects[sub]`` = ``{"site", <label>: value, "fmri": [(session, volumes, tr, nan)],
    "eeg": [(session, task, seconds, bad onsets)]}``.
    """
    folder = root / name
    folder.mkdir(parents=True)
    channels = channels or CHANNEL_SETS["1020_19"]
    inventory, fmri_qc, eeg_qc = [], [], []
    for sub, spec in subjects.items():
        base = {"cohort": name, "subject": sub, "status": "ok", "reason": ""}
        for ses, n, tr, nan in spec.get("fmri", []):
            stem = f"sub-{sub}_ses-{ses}_task-rest"
            path = _fmri(folder, stem, n, rois, tr, nan)
            row = {**base, "session": ses, "task": "rest", "run": "", "atlas": atlas}
            fmri_qc.append({**row, "timeseries": path, "n_volumes": n, "n_kept": n})
            inventory.append({**row, "modality": "fmri", "site": spec["site"]})
        for ses, task, seconds, bads in spec.get("eeg", []):
            stem = f"sub-{sub}_ses-{ses}_task-{task}"
            path = _eeg(folder, stem, seconds, bads, channels)
            row = {**base, "session": ses, "task": task, "run": "n/a"}
            eeg_qc.append({**row, "clean_file": path, "sfreq": SFREQ})
            inventory.append({**row, "modality": "eeg", "site": spec["site"]})
        for row in inventory:
            if row["subject"] == sub:
                row.update({label: spec.get(label) for label in labels})
    table = pd.DataFrame(inventory).reindex(
        columns=HEAD_COLUMNS + list(labels) + ["status", "reason"]
    )
    for label in labels:
        table[label] = table[label].astype("Int64")
    table.to_csv(folder / "inventory.tsv", sep="\t", index=False, na_rep="n/a")
    pd.DataFrame(fmri_qc).reindex(columns=FMRI_QC).to_csv(
        folder / "fmri_qc.tsv", sep="\t", index=False, na_rep="n/a"
    )
    if eeg_qc:
        pd.DataFrame(eeg_qc).reindex(columns=EEG_QC).to_csv(
            folder / "eeg_qc.tsv", sep="\t", index=False, na_rep="n/a"
        )


def _config(cohorts: list[str], **study) -> dict:
    return validate({"cohorts": cohorts, "study": {**STUDY, **study}}, "config", "test")


# Cohort "a": both modalities; "b": fMRI only, no ASD label.
COHORT_A = {
    "01": {"site": "S1", "ASD": 1, "fmri": [("1", 40, 2.0, False)],
           "eeg": [("1", "eyesopen", 8, [3.0]), ("1", "eyesclosed", 6, [])]},
    "02": {"site": "S1", "ASD": 0, "fmri": [("1", 30, 2.0, False), ("2", 30, 2.0, False)],
           "eeg": [("2", "eyesclosed", 4, [])]},
    "03": {"site": "S2", "ASD": 1, "fmri": [("1", 15, 2.0, False)],
           "eeg": [("1", "eyesopen", 5, [])]},
    "04": {"site": "S2", "ASD": 0, "fmri": [("1", 40, 2.0, True)]},
    "05": {"site": "S2", "ASD": None, "eeg": [("1", "eyesopen", 6, [])]},
    "06": {"site": "S1", "ASD": 1, "fmri": [("1", 30, None, False)]},
}  # fmt: skip
COHORT_B = {f"1{i}": {"site": "T", "sex": i % 2, "fmri": [("1", 25, 0.8, False)]} for i in range(4)}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("store")
    write_cohort(root / "results", "a", COHORT_A)
    write_cohort(root / "results", "b", COHORT_B, labels=("sex",))
    summary = build_store(_config(["a", "b"]), root / "results", root / "store")
    return root / "store", summary


def test_store_layout_and_shapes(store: tuple[Path, dict]) -> None:
    out, summary = store
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["samples.h5", "index.tsv", "pairs.tsv", "exclusions.tsv", "store.json"]
    )
    index = read_store_table(out, "index")
    with h5py.File(out / "samples.h5") as h5:
        assert h5["fmri/spatial"].shape[1:] == (6, 6)
        assert h5["fmri/temporal"].shape[1:] == (6, 20)
        assert h5["fmri/frequency"].shape[1:] == (6, 8)
        assert h5["eeg/spatial"].shape[1:] == (19, 19)
        assert h5["eeg/temporal"].shape[1:] == (19, 64)
        assert h5["eeg/frequency"].shape[1:] == (19, 45)
        assert h5["fmri/spatial"].chunks == (1, 6, 6) and h5["fmri/spatial"].compression is None
        for modality in ("fmri", "eeg"):
            rows = index.loc[index["modality"] == modality, "row"]
            assert sorted(rows) == list(range(h5[f"{modality}/spatial"].shape[0]))
            fc = h5[f"{modality}/spatial"][:]
            assert np.allclose(fc, fc.transpose(0, 2, 1), atol=1e-6)
    # fMRI windows: 01: 3, 02: 2 + 2, 11-13: 1 each (25 volumes) ; EEG 2-s segments avoiding BADs:
    # 01 eyesopen 8 s with BAD at 3-4 s -> [0-2], [4-6], [6-8]; eyesclosed 6 s -> 3; 02: 2; 03: 2;
    # 05: 3
    counts = index.groupby(["subject", "modality"]).size().to_dict()
    assert counts[("01", "fmri")] == 3 and counts[("01", "eeg")] == 6
    assert counts[("02", "fmri")] == 4 and counts[("02", "eeg")] == 2
    assert counts[("05", "eeg")] == 3 and counts[("10", "fmri")] == 1
    assert set(index.loc[index["modality"] == "eeg", "tag"]) == {"eyesopen", "eyesclosed"}
    assert summary["n_samples"] == {"fmri": 11, "eeg": 13}
    eyes_open = index[(index["subject"] == "01") & (index["tag"] == "eyesopen")]
    assert list(eyes_open["start"].astype(float)) == [0.0, 4.0, 6.0]


def test_pairs_table(store: tuple[Path, dict]) -> None:
    out, _ = store
    pairs = read_store_table(out, "pairs")
    per_subject = pairs.groupby("subject").size().to_dict()
    assert per_subject["01"] == 5  # 3 x 6 = 18 pairs capped at 5
    assert per_subject["02"] == 5  # 4 x 2 = 8 capped at 5
    assert per_subject["03"] == 2  # 03's fMRI is too short: EEG only
    kinds = pairs.groupby("subject")["kind"].agg(set).to_dict()
    assert kinds["01"] == {"natural"} and kinds["02"] == {"natural", "cross"}
    assert kinds["03"] == {"eeg_only"} and kinds["05"] == {"eeg_only"}
    assert kinds["10"] == {"fmri_only"}
    assert set(pairs.loc[pairs["cohort"] == "b", "ASD"].isna()) == {True}
    assert list(pairs.columns[:7]) == [
        "pair_id",
        "cohort",
        "subject",
        "site",
        "ASD",
        "sex",
        "fmri_sample",
    ]


def test_exclusions_recorded(store: tuple[Path, dict]) -> None:
    out, summary = store
    excl = read_store_table(out, "exclusions")
    reasons = {(r.subject, r.modality): r.reason for r in excl.itertuples()}
    assert "fewer than the 20-volume window" in reasons[("03", "fmri")]
    assert "non-finite" in reasons[("04", "fmri")]
    assert "non-finite" in reasons[("04", "subject")]
    assert "RepetitionTime unknown" in reasons[("06", "fmri")]
    assert ("06", "subject") in reasons
    index = read_store_table(out, "index")
    assert not index["subject"].isin(["04", "06"]).any()
    assert summary["cohorts_without_stratify_label"] == ["b"]


def test_folds_per_subject(store: tuple[Path, dict]) -> None:
    out, _ = store
    index = read_store_table(out, "index")
    pairs = read_store_table(out, "pairs")
    assert index.groupby(["cohort", "subject"])["fold"].nunique().max() == 1
    assert set(index["fold"]) == {0, 1}
    for fold in (0, 1):
        test = set(pairs.loc[pairs["fold"] == fold, "subject"])
        assert test and not test & set(pairs.loc[pairs["fold"] != fold, "subject"])


def test_default_tr_and_determinism(store: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = store
    results = out.parent / "results"
    summary = build_store(_config(["a", "b"], fmri_default_tr=2.0), results, tmp_path / "s")
    assert summary["n_samples"]["fmri"] == 13  # 06 (30 volumes): two windows
    again = build_store(_config(["a", "b"]), results, tmp_path / "t")
    assert again["n_pairs"] == store[1]["n_pairs"]
    assert (tmp_path / "t" / "pairs.tsv").read_text() == (out / "pairs.tsv").read_text()
    assert (tmp_path / "t" / "index.tsv").read_text() == (out / "index.tsv").read_text()


def test_same_recording_in_two_cohorts_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A copy of one cohort's data added as a second cohort: each shared file is named."""
    two = {k: COHORT_A[k] for k in ("01", "02")}
    write_cohort(tmp_path, "a", two)
    write_cohort(tmp_path, "b", two)  # the same generator: identical files
    write_cohort(tmp_path, "c", {"09": {"site": "S", "ASD": 1, "fmri": [("1", 33, 2.0, False)]}})
    for name in ("a", "b", "c"):
        inventory = pd.read_csv(tmp_path / name / "inventory.tsv", sep="\t", dtype=str)
        qc = pd.read_csv(tmp_path / name / "fmri_qc.tsv", sep="\t", dtype=str)
        fmri = inventory["modality"] == "fmri"
        inventory.loc[fmri, "path"] = qc["timeseries"].to_numpy()
        inventory.to_csv(tmp_path / name / "inventory.tsv", sep="\t", index=False, na_rep="n/a")
    shared = shared_recordings(tmp_path, ["a", "b", "c"])
    assert len(shared) == 3  # the three fMRI runs of 01 and 02; cohort c shares nothing
    assert all(len(entry["recordings"]) == 2 for entry in shared)
    assert {r.split(":")[0] for e in shared for r in e["recordings"]} == {
        "a/sub-01",
        "a/sub-02",
        "b/sub-01",
        "b/sub-02",
    }
    assert "the same recording" in caplog.text and "two cohorts" in caplog.text
    summary = build_store(_config(["a", "c"], folds=2), tmp_path, tmp_path / "s")
    assert summary["shared_recordings"] == []


def test_mixed_roi_sets_and_atlases_refused(tmp_path: Path) -> None:
    one = {"01": {"site": "S", "ASD": 1, "fmri": [("1", 30, 2.0, False)]}}
    write_cohort(tmp_path, "a", one)
    write_cohort(tmp_path, "c", one, rois=7)
    write_cohort(tmp_path, "d", one, atlas="other")
    with pytest.raises(McspError, match="cohorts a and c have different ROI sets"):
        build_store(_config(["a", "c"], folds=2), tmp_path, tmp_path / "s")
    with pytest.raises(McspError, match="different atlases.*a: test; d: other"):
        build_store(_config(["a", "d"]), tmp_path, tmp_path / "s")
    with pytest.raises(McspError, match="cohorts d have no fMRI time series in atlas 'test'"):
        build_store(_config(["a", "d"], atlas="test"), tmp_path, tmp_path / "s")
    with pytest.raises(McspError, match="inventory.tsv: not found"):
        build_store(_config(["zz"]), tmp_path, tmp_path / "s")
    assert not (tmp_path / "s" / "samples.h5").exists()


def test_unreachable_channel_set_excluded(tmp_path: Path) -> None:
    subjects = {
        f"0{i}": {"site": "S", "ASD": i % 2, "eeg": [("1", "eyesopen", 4, [])]} for i in range(2)
    }
    write_cohort(tmp_path, "a", subjects, channels=CHANNEL_SETS["1020_19"][:-1] + ["Oz"])
    with pytest.raises(McspError, match="no usable fMRI window or EEG segment.*O2 missing"):
        build_store(_config(["a"]), tmp_path, tmp_path / "s")


def test_dataset_reads_lazily(store: tuple[Path, dict]) -> None:
    out, _ = store
    ds = PairDataset(out)
    assert ds._h5 is None  # nothing opened at construction
    assert len(ds) == len(read_store_table(out, "pairs"))
    item = ds[0]
    assert ds._h5 is not None
    assert item["fmri"]["spatial"].x.shape == (6, 6)
    tracemalloc.start()
    for i in range(len(ds)):
        ds[i]
    first = tracemalloc.get_traced_memory()[0]
    for _ in range(3):
        for i in range(len(ds)):
            ds[i]
    grown = tracemalloc.get_traced_memory()[0] - first
    tracemalloc.stop()
    assert grown < 200_000, grown
    test_fold = PairDataset(out, folds=[0])
    train = PairDataset(out, exclude_folds=[0])
    assert len(test_fold) + len(train) == len(ds)
    assert not set(test_fold.pairs["subject"]) & set(train.pairs["subject"])


def test_distinct_samples_of_the_pairs(store: tuple[Path, dict]) -> None:
    out, _ = store
    ds = PairDataset(out)
    for modality, other in (("fmri", "eeg"), ("eeg", "fmri")):
        samples, position = ds.distinct(modality)
        ids = ds.pairs[f"{modality}_sample"]
        assert len(samples) == ids[ids != ""].nunique() < len(ds)
        assert (samples.rows[other] == -1).all() and samples[0][other] is None
        for i in range(len(ds)):
            if ids[i] == "":
                assert position[i] == -1
            else:  # the pair's own sample, read from the distinct dataset
                j = position[i]
                assert samples.pairs.at[j, f"{modality}_sample"] == ids[i]
                assert torch.equal(samples[j][modality]["temporal"], ds[i][modality]["temporal"])


def test_collate_with_workers(store: tuple[Path, dict]) -> None:
    out, _ = store
    ds = PairDataset(out)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=len(ds), num_workers=2, collate_fn=collate_pairs
    )
    batch = next(iter(loader))
    pairs = ds.pairs
    for modality in ("fmri", "eeg"):
        part = batch[modality]
        has = torch.tensor((pairs[f"{modality}_sample"] != "").to_numpy())
        assert torch.equal(part["mask"], has)
        n = int(has.sum())
        assert isinstance(part["spatial"], Batch) and part["spatial"].num_graphs == n
        assert part["spatial"].edge_attr.shape[0] == part["spatial"].edge_index.shape[1]
        assert part["temporal"].dtype == torch.float32 and part["temporal"].shape[0] == n
        assert part["frequency"].shape[0] == n
    # proportional (default 0.1) of 19 * 18 / 2 = 171 pairs -> 17 undirected edges per EEG graph
    first = batch["eeg"]["spatial"].get_example(0)
    assert first.edge_index.shape[1] == 2 * 17 and first.x.shape == (19, 19)
    only_fmri = collate_pairs([ds[i] for i in np.flatnonzero(pairs["kind"] == "fmri_only")])
    assert only_fmri["eeg"]["spatial"] is None and not only_fmri["eeg"]["mask"].any()


@pytest.mark.skipif(
    not (SHARED_DATA / "abide_pcp_ho").is_dir(), reason="ABIDE PCP data (../shared/data) absent"
)
def test_abide_time_series_window(tmp_path: Path) -> None:
    from mcsp.domains import fmri_domains, fmri_windows, study_settings

    files = sorted((SHARED_DATA / "abide_pcp_ho" / "rois_ho").glob("*.1D*"))
    if not files:
        pytest.skip("no ABIDE ROI time series under ../shared/data/abide_pcp_ho/rois_ho")
    ts = np.loadtxt(files[0], ndmin=2)
    study = study_settings(validate({}, "config", "test"))
    starts, problems = fmri_windows(ts, 100, 50)
    assert starts and not problems
    d = fmri_domains(ts[starts[0] : starts[0] + 100], 2.0, study)
    assert d["spatial"].shape == (ts.shape[1], ts.shape[1])


def test_sample_view(store: tuple[Path, dict]) -> None:
    store_dir, _ = store
    index = read_store_table(store_dir, "index")
    for modality, other in (("fmri", "eeg"), ("eeg", "fmri")):
        samples = PairDataset(store_dir, modality=modality)
        mine = index[index["modality"] == modality]
        assert len(samples) == len(mine)
        assert sorted(samples.pairs["pair_id"]) == sorted(mine["sample_id"])
        assert samples[0][other] is None and samples[0][modality] is not None
        batch = collate_pairs([samples[i] for i in range(len(samples))])
        assert batch[modality]["mask"].all() and batch[other]["spatial"] is None
    test_fold = PairDataset(store_dir, folds=[0], modality="fmri")
    assert set(test_fold.pairs["fold"]) == {0}
    with pytest.raises(ValueError, match="modality"):
        PairDataset(store_dir, modality="meg")


def test_run_spatial_domain_and_window_views(tmp_path: Path) -> None:
    """study.spatial run: every window of a run carries the run's FC (of all its volumes), the
    window's own is kept as spatial_window; EEG gets the mean of its segments' matrices."""
    from mcsp.fmri import functional_connectivity

    write_cohort(tmp_path / "results", "a", COHORT_A)
    build_store(_config(["a"], spatial="run"), tmp_path / "results", tmp_path / "store")
    window = tmp_path / "window"
    build_store(_config(["a"]), tmp_path / "results", window)
    index = read_store_table(tmp_path / "store", "index")
    qc = pd.read_csv(tmp_path / "results" / "a" / "fmri_qc.tsv", sep="\t", dtype=str)
    with h5py.File(tmp_path / "store" / "samples.h5") as h5, h5py.File(window / "samples.h5") as w:
        np.testing.assert_array_equal(h5["fmri/spatial_window"][:], w["fmri/spatial"][:])
        np.testing.assert_array_equal(h5["eeg/spatial_window"][:], w["eeg/spatial"][:])
        np.testing.assert_array_equal(h5["fmri/temporal"][:], w["fmri/temporal"][:])
        ts = pd.read_csv(qc.loc[qc["subject"] == "01", "timeseries"].iloc[0], sep="\t").to_numpy()
        rows = index.loc[(index["subject"] == "01") & (index["modality"] == "fmri"), "row"]
        for row in rows.astype(int):
            np.testing.assert_allclose(
                h5["fmri/spatial"][row], functional_connectivity(ts), atol=1e-6
            )
        rows = index.loc[(index["subject"] == "02") & (index["modality"] == "eeg"), "row"]
        segments = w["eeg/spatial"][sorted(rows.astype(int))]
        np.testing.assert_allclose(
            h5["eeg/spatial"][int(rows.iloc[0])], segments.mean(0), atol=1e-6
        )
    items = [PairDataset(tmp_path / "store", window_views=True)[i] for i in range(4)]
    batch = collate_pairs(items)
    for modality in ("fmri", "eeg"):
        if batch[modality]["spatial"] is not None:
            assert (
                batch[modality]["spatial_window"].num_graphs
                == batch[modality]["spatial"].num_graphs
            )
    assert "spatial_window" not in PairDataset(tmp_path / "store")[0]["fmri"]
    with pytest.raises(McspError, match="study.spatial: run"):
        PairDataset(window, window_views=True)


def test_eeg_segments_cut_by_condition(tmp_path: Path) -> None:
    """An HBN-style recording with eyes open / closed marked by events: after cleaning, the store
    cuts segments inside one condition each, tags them with it, and eyes-closed segments carry
    more occipital alpha; the second before the first mapped event is left out."""
    from mcsp.eeg import preprocess_recording, write_clean

    from .test_eeg import HBN_SETTINGS, write_hbn_recording

    result = preprocess_recording(write_hbn_recording(tmp_path / "bids"), HBN_SETTINGS)
    spans = result.sidecar["conditions"]["spans"]
    subjects = {
        f"0{i}": {"site": "S", "ASD": i, "eeg": [("1", "RestingState", 1, [])]} for i in range(2)
    }
    write_cohort(tmp_path / "results", "hbn", subjects)
    for clean in (tmp_path / "results" / "hbn").glob("*_desc-clean_eeg.fif"):
        write_clean(result, clean, clean.with_suffix(".json"))
    summary = build_store(_config(["hbn"], spatial="run"), tmp_path / "results", tmp_path / "store")
    index = read_store_table(tmp_path / "store", "index")
    assert set(index["tag"]) == {"eyesopen", "eyesclosed"}
    assert (index["task"] == index["tag"]).all()
    assert index["start"].astype(float).min() >= 1.0  # before the first mapped event: left out
    length = STUDY["eeg_segment_s"]
    for tag, start in zip(index["tag"], index["start"].astype(float), strict=True):
        inside = [
            s for s in spans if s["onset_s"] <= start + 1e-6
            and start + length <= s["onset_s"] + s["duration_s"] + 1e-6
        ]  # fmt: skip
        assert [s["condition"] for s in inside] == [tag], (tag, start)
    seconds = result.sidecar["conditions"]["clean_seconds"]
    for tag, n in index[index["subject"] == "00"]["tag"].value_counts().items():
        assert n * length <= seconds[tag] and n * length > seconds[tag] - 4 * length
    freqs = np.array(summary["eeg_frequencies_hz"])
    occipital = [CHANNEL_SETS["1020_19"].index(c) for c in ("O1", "O2")]
    with h5py.File(tmp_path / "store" / "samples.h5") as h5:
        power = h5["eeg/frequency"][:][:, occipital][:, :, (freqs >= 8) & (freqs <= 12)]
        spatial = h5["eeg/spatial"][:]
    alpha = (10.0**power).mean(axis=(1, 2))  # V²/Hz over 8-12 Hz
    rows = {tag: index.loc[index["tag"] == tag, "row"].astype(int) for tag in seconds}
    assert alpha[rows["eyesclosed"]].min() > alpha[rows["eyesopen"]].max()
    assert alpha[rows["eyesclosed"]].mean() > 5 * alpha[rows["eyesopen"]].mean()
    # study.spatial run: each condition's segments share their condition's mean matrix
    for tag, rows_of in rows.items():
        assert np.allclose(spatial[rows_of], spatial[rows_of.iloc[0]]), tag
    assert not np.allclose(spatial[rows["eyesopen"].iloc[0]], spatial[rows["eyesclosed"].iloc[0]])
