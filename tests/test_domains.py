"""Samples, domains and pairing: windows, clean EEG segments, shapes, sparsification, pair caps."""

from __future__ import annotations

import mne
import numpy as np
import pandas as pd
import pytest

from mcsp.config import validate
from mcsp.domains import (
    clean_mask,
    eeg_connectivity,
    eeg_domains,
    eeg_segment_starts,
    fmri_domains,
    fmri_windows,
    sparsify,
    study_settings,
)
from mcsp.exceptions import ConfigError
from mcsp.pairing import pair_samples

STUDY = study_settings(validate({}, "config", "test"))


def test_study_defaults() -> None:
    assert STUDY["fmri_window"] == 100
    assert STUDY["max_pairs_per_subject"] == 22
    assert STUDY["folds"] == 10
    assert STUDY["cohorts"] == ["synthetic"]
    with pytest.raises(ConfigError, match="fmri_frequency_range"):
        study_settings({"study": {"fmri_frequency_range": [0.1, 0.01]}})


def test_fmri_windows_and_failures() -> None:
    ts = np.random.default_rng(0).normal(size=(250, 5))
    starts, problems = fmri_windows(ts, 100, 50)
    assert starts == [0, 50, 100, 150] and not problems
    assert fmri_windows(ts[:99], 100, 50) == (
        [],
        ["99 kept volumes, fewer than the 100-volume window"],
    )
    ts[10, 2] = np.nan
    assert fmri_windows(ts, 100, 50)[0] == [50, 100, 150]
    ts[:, 0] = np.nan
    starts, problems = fmri_windows(ts, 100, 50)
    assert starts == [] and "non-finite" in problems[0]


def test_eeg_segments_avoid_bad_annotations() -> None:
    sfreq = 100.0
    info = mne.create_info(["Cz", "Pz"], sfreq, "eeg")
    raw = mne.io.RawArray(np.zeros((2, 3000)), info, verbose="error")
    raw.set_annotations(mne.Annotations([5.0, 20.0], [1.0, 1.0], ["BAD_segment", "BAD_segment"]))
    good = clean_mask(raw)
    assert (~good).sum() == 200
    starts = eeg_segment_starts(good, 400, 400)
    for s in starts:
        assert good[s : s + 400].all()
    # 0-5 s: one 4-s segment; 6-20 s: three; 21-30 s: two
    assert starts == [0, 600, 1000, 1400, 2100, 2500]


def test_fmri_domain_shapes_and_fc() -> None:
    window = np.random.default_rng(1).normal(size=(100, 12))
    window[:, 3] = 1.0  # a flat ROI
    d = fmri_domains(window, 2.0, STUDY)
    assert d["spatial"].shape == (12, 12)
    assert d["temporal"].shape == (12, 100)
    assert d["frequency"].shape == (12, STUDY["fmri_frequency_bins"])
    fc = d["spatial"]
    assert np.allclose(fc, fc.T) and np.all(np.diag(fc) == 0) and np.all(fc[3] == 0)
    assert np.allclose(d["temporal"][0].mean(), 0, atol=1e-6)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in d.values())


def test_fmri_spectrum_lines_up_across_trs() -> None:
    # A 0.05 Hz sine peaks at the same bin whatever the TR.
    peaks = []
    for tr in (0.8, 2.0):
        t = np.arange(100) * tr
        x = np.sin(2 * np.pi * 0.05 * t)[:, None] + 0.01 * np.random.default_rng(2).normal(
            size=(100, 2)
        )
        peaks.append(int(np.argmax(fmri_domains(x, tr, STUDY)["frequency"][0])))
    grid = np.linspace(0.01, 0.1, STUDY["fmri_frequency_bins"])
    assert abs(grid[peaks[0]] - 0.05) < 0.006 and abs(grid[peaks[1]] - 0.05) < 0.006


@pytest.mark.parametrize("measure", ["spectral_correlation", "aec", "coherence", "wpli"])
def test_eeg_domains(measure: str) -> None:
    segment = np.random.default_rng(3).normal(size=(19, 2560)) * 1e-5
    study = {**STUDY, "eeg_connectivity": measure}
    d = eeg_domains(segment, 256.0, study)
    assert d["spatial"].shape == (19, 19)
    assert d["temporal"].shape == (19, STUDY["eeg_temporal_length"])
    assert d["frequency"].shape == (19, STUDY["eeg_frequency_bins"])
    assert np.allclose(d["spatial"], d["spatial"].T, atol=1e-6)
    assert np.all(np.diag(d["spatial"]) == 0)
    assert all(np.isfinite(v).all() for v in d.values())


def test_eeg_connectivity_unknown_measure() -> None:
    with pytest.raises(ConfigError, match="eeg_connectivity"):
        eeg_connectivity(np.zeros((3, 512)), 256.0, {**STUDY, "eeg_connectivity": "pli"})


def test_sparsify_keeps_the_right_edges() -> None:
    rng = np.random.default_rng(4)
    m = rng.normal(size=(10, 10))
    m = m + m.T
    np.fill_diagonal(m, 0)
    n_pairs = 45
    edge_index, weight = sparsify(m, "proportional", 0.2)
    assert edge_index.shape == (2, 2 * 9) and weight.shape == (18,)
    assert np.allclose(weight, m[edge_index[0], edge_index[1]])
    strongest = np.sort(np.abs(m[np.triu_indices(10, 1)]))[::-1][:9]
    assert np.allclose(np.sort(np.abs(weight[:9]))[::-1], strongest)
    assert sparsify(m, "none", 0)[0].shape[1] == 2 * n_pairs
    threshold = 1.0
    expected = (np.abs(m[np.triu_indices(10, 1)]) >= threshold).sum()
    assert sparsify(m, "threshold", threshold)[0].shape[1] == 2 * expected
    edge_index, _ = sparsify(m, "topk", 3)
    degree = np.bincount(edge_index[0], minlength=10)
    assert degree.min() >= 3 and edge_index.shape[1] <= 2 * 30
    # both directions, weights taken from the matrix, no self-loops
    assert set(map(tuple, edge_index.T)) == set(map(tuple, edge_index[::-1].T))
    assert not (edge_index[0] == edge_index[1]).any()
    with pytest.raises(ConfigError, match="sparsify"):
        sparsify(m, "mst", 1)


def _samples(n_fmri: dict[str, int], n_eeg: dict[str, int], subject: str = "01") -> pd.DataFrame:
    rows = []
    for modality, counts in (("fmri", n_fmri), ("eeg", n_eeg)):
        for session, n in counts.items():
            for k in range(n):
                rows.append(
                    {
                        "sample_id": f"c_sub-{subject}_ses-{session}_{modality}-{k:03d}",
                        "cohort": "c",
                        "subject": subject,
                        "session": session,
                        "site": "A",
                        "modality": modality,
                        "ASD": 1,
                    }
                )
    return pd.DataFrame(rows)


def test_pairs_all_combinations_below_the_cap() -> None:
    pairs = pair_samples(_samples({"1": 2, "2": 1}, {"1": 3}), 22, seed=0, labels=["ASD"])
    assert len(pairs) == 9
    assert (pairs["kind"] == "natural").sum() == 6 and (pairs["kind"] == "cross").sum() == 3
    assert pairs["pair_id"].is_unique and list(pairs["ASD"]) == [1] * 9
    for _, p in pairs.iterrows():
        same = p["fmri_sample"].split("_")[2] == p["eeg_sample"].split("_")[2]
        assert (p["kind"] == "natural") == same


def test_pairs_capped_and_deterministic() -> None:
    samples = pd.concat([_samples({"1": 5}, {"1": 4, "2": 4}), _samples({"1": 2}, {"1": 3}, "02")])
    a = pair_samples(samples, 22, seed=1)
    assert (a["subject"] == "01").sum() == 22 and (a["subject"] == "02").sum() == 6
    assert not a.duplicated(["fmri_sample", "eeg_sample"]).any()
    pd.testing.assert_frame_equal(a, pair_samples(samples.sample(frac=1, random_state=3), 22, 1))
    assert not a.equals(pair_samples(samples, 22, seed=2))


def test_single_modality_samples_kept() -> None:
    samples = pd.concat([_samples({"1": 3}, {}), _samples({}, {"1": 30}, "02")])
    pairs = pair_samples(samples, 22, seed=0)
    fmri_only = pairs[pairs["subject"] == "01"]
    assert len(fmri_only) == 3 and set(fmri_only["kind"]) == {"fmri_only"}
    assert set(fmri_only["eeg_sample"]) == {""}
    eeg_only = pairs[pairs["subject"] == "02"]
    assert len(eeg_only) == 22 and set(eeg_only["kind"]) == {"eeg_only"}
