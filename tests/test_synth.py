"""The synthetic BIDS cohort: layout, readers, confounds, determinism and the planted effects."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import mne
import mne_bids
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.signal import csd, welch

from mcsp.synth import DEFAULT_EFFECTS, generate_cohort

SEED = int(os.environ.get("MCSP_TEST_SYNTH_SEED", "11"))
N_SUBJECTS = 10
VOLUMES = 60
EEG_SECONDS = 20.0
SITES = {
    "siteA": {"sfreq": 512.0, "line_freq": 50.0, "n_eeg": 64, "tr": 2.0},
    "siteB": {"sfreq": 500.0, "line_freq": 60.0, "n_eeg": 32, "tr": 0.8},
    "siteC": {"sfreq": 250.0, "line_freq": 60.0, "n_eeg": 129, "tr": 2.5},
}
# Every site records runs of VOLUMES x 2 s (a 2-s TR records VOLUMES volumes).
SITE_VOLUMES = {site: round(VOLUMES * 2.0 / acq["tr"]) for site, acq in SITES.items()}
SPACE = "space-MNI152NLin2009cAsym"
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
TINY = {"eeg_duration_s": 4.0, "fmri_volumes": 20, "fmri_voxel_size_mm": 8}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth") / "bids"
    truth = generate_cohort(
        root, N_SUBJECTS, SEED, eeg_duration_s=EEG_SECONDS, fmri_volumes=VOLUMES, n_jobs=2
    )
    return root, truth


def subjects(truth: dict, *, eeg: bool = False, fmri: bool = False) -> list[dict]:
    return [
        s for s in truth["subjects"] if (s["has_eeg"] or not eeg) and (s["has_fmri"] or not fmri)
    ]


def preproc(root: Path, subject: str, session: str) -> Path:
    func = root / "derivatives" / "fmriprep" / subject / f"ses-{session}" / "func"
    return func / f"{subject}_ses-{session}_task-rest_{SPACE}_desc-preproc_bold.nii.gz"


def confounds_of(root: Path, subject: str, session: str) -> pd.DataFrame:
    func = root / "derivatives" / "fmriprep" / subject / f"ses-{session}" / "func"
    path = func / f"{subject}_ses-{session}_task-rest_desc-confounds_timeseries.tsv"
    return pd.read_csv(path, sep="\t", na_values="n/a")


def read_eeg(root: Path, subject: str, session: str, task: str) -> mne.io.BaseRaw:
    path = mne_bids.BIDSPath(
        subject=subject[4:], session=session, task=task, datatype="eeg", root=root
    )
    with warnings.catch_warnings():  # no events.tsv (rest), VEOG has no position
        warnings.simplefilter("ignore", RuntimeWarning)
        return mne_bids.read_raw_bids(path, verbose=False)


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- dataset layout ---------------------------------------------------------------------------


def test_returns_the_ground_truth_it_writes(cohort: tuple[Path, dict]) -> None:
    root, truth = cohort
    assert json.loads((root / "code" / "ground_truth.json").read_text()) == truth
    assert truth["seed"] == SEED
    assert truth["parameters"]["effects"] == DEFAULT_EFFECTS
    assert set(truth["effects"]) == set(DEFAULT_EFFECTS)
    assert not list(root.parent.glob("bids.*")), "temporary folders left behind"


def test_pybids_parses_raw_and_derivatives(cohort: tuple[Path, dict]) -> None:
    from bids import BIDSLayout

    root, truth = cohort
    layout = BIDSLayout(root, derivatives=True)
    assert sorted(layout.get_subjects()) == sorted(
        s["participant_id"][4:] for s in truth["subjects"]
    )
    assert layout.get_sessions() == ["1", "2"]
    assert set(layout.get_tasks()) == {"eyesopen", "eyesclosed", "rest"}
    n_eeg = sum(2 * len(s["sessions"]) for s in subjects(truth, eeg=True))
    n_fmri = sum(len(s["sessions"]) for s in subjects(truth, fmri=True))
    assert len(layout.get(scope="raw", suffix="eeg", extension=".vhdr")) == n_eeg
    assert len(layout.get(scope="raw", suffix="bold", extension=".nii.gz")) == n_fmri
    bold = layout.get(scope="derivatives", desc="preproc", suffix="bold", extension=".nii.gz")
    assert len(bold) == n_fmri
    assert bold[0].get_entities()["space"] == "MNI152NLin2009cAsym"
    confounds = layout.get(scope="derivatives", desc="confounds", extension=".tsv")
    assert len(confounds) == n_fmri
    description = json.loads((root / "derivatives/fmriprep/dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "fMRIPrep"


def test_every_file_name_is_valid_bids(cohort: tuple[Path, dict]) -> None:
    from bids_validator import BIDSValidator

    root, _ = cohort
    validator = BIDSValidator()
    names = ["/" + p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    assert [name for name in names if not validator.is_bids(name)] == []


def test_participants_table_and_sidecar(cohort: tuple[Path, dict]) -> None:
    root, _ = cohort
    table = pd.read_csv(root / "participants.tsv", sep="\t")
    sidecar = json.loads((root / "participants.json").read_text())
    assert list(table.columns) == ["participant_id", "age", "sex", "site", "diagnosis"]
    assert set(sidecar) == set(table.columns)
    for column in ("sex", "site", "diagnosis"):
        assert set(table[column]) <= set(sidecar[column]["Levels"])
    assert table["diagnosis"].value_counts().to_dict() == {
        "control": 4,
        "ADHD": 2,
        "ASD": 2,
        "MDD": 2,
    }
    assert set(table["site"]) == set(SITES)
    assert table["age"].between(5, 90).all()


def test_special_subjects_exist_on_disk(cohort: tuple[Path, dict]) -> None:
    root, truth = cohort
    fmri_only = [s for s in truth["subjects"] if not s["has_eeg"]]
    eeg_only = [s for s in truth["subjects"] if not s["has_fmri"]]
    two_sessions = [s for s in truth["subjects"] if s["sessions"] == ["1", "2"]]
    assert fmri_only and eeg_only and two_sessions
    for s in fmri_only:
        assert not list((root / s["participant_id"]).rglob("*_eeg.vhdr"))
        assert preproc(root, s["participant_id"], "1").exists()
    for s in eeg_only:
        assert not list((root / s["participant_id"]).rglob("*_bold.nii.gz"))
        assert not (root / "derivatives" / "fmriprep" / s["participant_id"]).exists()
    for s in two_sessions:
        sub = s["participant_id"]
        if s["has_eeg"]:
            assert len(list((root / sub / "ses-2" / "eeg").glob("*_eeg.vhdr"))) == 2
        if s["has_fmri"]:
            assert preproc(root, sub, "2").exists()


# --- readers ----------------------------------------------------------------------------------


def test_eeg_reads_back_with_the_site_acquisition(cohort: tuple[Path, dict]) -> None:
    root, truth = cohort
    seen = set()
    for s in subjects(truth, eeg=True):
        if s["site"] in seen:
            continue
        seen.add(s["site"])
        expected = SITES[s["site"]]
        raw = read_eeg(root, s["participant_id"], "1", "eyesclosed")
        assert raw.info["sfreq"] == expected["sfreq"]
        assert raw.info["line_freq"] == expected["line_freq"]
        assert len(mne.pick_types(raw.info, eeg=True)) == expected["n_eeg"]
        assert raw.get_montage() is not None
        positions = raw.get_montage().get_positions()["ch_pos"]
        assert len(positions) == expected["n_eeg"]
        assert raw.times[-1] == pytest.approx(EEG_SECONDS, abs=0.01)
        data = raw.get_data(picks="eeg")
        assert 3e-6 < np.median(data.std(axis=1)) < 60e-6  # volts, tens of µV
        assert (raw.get_channel_types().count("eog") == 1) == (s["site"] != "siteC")
    assert seen == set(SITES)


def test_bad_channels_are_in_the_data(cohort: tuple[Path, dict]) -> None:
    root, truth = cohort
    assert truth["bad_channels"], "expected ~10% of recordings with a bad channel"
    for bad in truth["bad_channels"]:
        raw = read_eeg(root, bad["participant_id"], bad["session"], bad["task"])
        std = raw.get_data(picks="eeg").std(axis=1)
        channel = std[raw.ch_names.index(bad["channel"])]
        if bad["kind"] == "flat":
            assert channel < 1e-9
        else:
            assert channel > 2 * np.median(std)


def test_fmri_images_and_sidecars(cohort: tuple[Path, dict]) -> None:
    root, truth = cohort
    for s in subjects(truth, fmri=True)[:4]:
        sub = s["participant_id"]
        path = preproc(root, sub, "1")
        image = nib.load(path)
        mask = nib.load(str(path).replace("desc-preproc_bold", "desc-brain_mask"))
        tr = SITES[s["site"]]["tr"]
        assert image.ndim == 4 and image.shape[3] == SITE_VOLUMES[s["site"]]
        assert image.shape[3] * tr == pytest.approx(VOLUMES * 2.0)
        assert truth["sites"][s["site"]]["fmri"]["volumes"] == image.shape[3]
        runs = [r for r in s["recordings"] if r["modality"] == "fmri"]
        assert all(r["n_volumes"] == image.shape[3] for r in runs)
        assert image.header.get_zooms()[3] == pytest.approx(tr)
        assert json.loads(path.with_suffix("").with_suffix(".json").read_text())[
            "RepetitionTime"
        ] == pytest.approx(tr)
        assert mask.shape == image.shape[:3]
        np.testing.assert_allclose(mask.affine, image.affine)
        data = np.asarray(image.dataobj)
        inside = np.asarray(mask.dataobj) > 0
        assert not data[~inside].any()
        assert 300 < data[inside].mean() < 3000
        raw = root / sub / "ses-1" / "func" / f"{sub}_ses-1_task-rest_bold.nii.gz"
        assert nib.load(raw).header.get_zooms()[3] == pytest.approx(tr)
        raw_sidecar = json.loads(raw.with_suffix("").with_suffix(".json").read_text())
        assert raw_sidecar["RepetitionTime"] == pytest.approx(tr)
        assert raw_sidecar["TaskName"] == "rest"


def test_confounds_follow_fmriprep(cohort: tuple[Path, dict]) -> None:
    root, truth = cohort
    expansions = ["", "_derivative1", "_power2", "_derivative1_power2"]
    required = [
        f"{base}{e}"
        for base in [*MOTION, "global_signal", "csf", "white_matter"]
        for e in expansions
    ]
    required += ["framewise_displacement", "std_dvars", "dvars", "rmsd"]
    required += [f"a_comp_cor_{i:02d}" for i in range(6)] + [
        f"t_comp_cor_{i:02d}" for i in range(3)
    ]
    for s in subjects(truth, fmri=True):
        for session in s["sessions"]:
            table = confounds_of(root, s["participant_id"], session)
            n_vols = SITE_VOLUMES[s["site"]]
            assert len(table) == n_vols
            assert not set(required) - set(table.columns)
            first = table.iloc[0]
            for column in [
                "framewise_displacement",
                "dvars",
                "std_dvars",
                "rmsd",
                "csf_derivative1",
            ]:
                assert np.isnan(first[column])
            assert (
                not table.drop(columns=[c for c in table if "derivative1" in c])
                .iloc[1:]
                .isna()
                .any()
                .any()
            )
            delta = table[MOTION].diff().abs()
            fd = delta[MOTION[:3]].sum(axis=1) + 50 * delta[MOTION[3:]].sum(axis=1)
            np.testing.assert_allclose(table["framewise_displacement"][1:], fd[1:], atol=1e-5)
            flagged = {
                int(table[c].to_numpy().argmax()) for c in table if c.startswith("motion_outlier")
            }
            assert set(np.flatnonzero(table["framewise_displacement"] > 0.5)) <= flagged
            n_dummy = truth["sites"][s["site"]]["fmri"]["non_steady_state_volumes"]
            steady = [c for c in table if c.startswith("non_steady_state_outlier")]
            assert len(steady) == n_dummy
            n_cosine = max(int(2 * n_vols * SITES[s["site"]]["tr"] / 128) - 1, 0)
            assert len([c for c in table if c.startswith("cosine")]) == n_cosine


def test_nilearn_loads_the_confounds(cohort: tuple[Path, dict]) -> None:
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    root, truth = cohort
    for site in SITES:
        s = next(s for s in subjects(truth, fmri=True) if s["site"] == site)
        bold = str(preproc(root, s["participant_id"], "1"))
        for strategy in ("simple", "scrubbing", "compcor"):
            confounds, sample_mask = load_confounds_strategy(bold, denoise_strategy=strategy)
            assert len(confounds) == SITE_VOLUMES[site] and confounds.notna().all().all()
            n_dummy = truth["sites"][site]["fmri"]["non_steady_state_volumes"]
            assert sample_mask is None or sample_mask.min() >= n_dummy


@pytest.mark.parametrize(("tr", "n_vols"), [(2.0, 150), (0.8, 375), (2.5, 120)])
def test_network_coupling_exact_in_the_slow_band(tr: float, n_vols: int) -> None:
    """The latent network signals correlate exactly as planted within 0.01-0.1 Hz (what a
    resting-state band-pass keeps) and over the whole run; most of their power is slow."""
    from mcsp.synth import _design, _fmri

    networks = _fmri.fmri_geometry(8).networks
    plan = next(p for p in _design.plan_cohort(10, 3) if p.diagnosis == "ASD")
    effects = _design.check_effects(None)
    coupling = _fmri.coupling_matrix(networks, plan, 5, effects)
    latent = _fmri._network_signals(np.random.default_rng(0), coupling, n_vols, tr)
    np.testing.assert_allclose(np.corrcoef(latent), coupling, atol=1e-8)
    freqs = np.fft.rfftfreq(n_vols, tr)
    spectrum = np.fft.rfft(latent, axis=-1)
    slow = np.fft.irfft(spectrum * ((freqs >= 0.01) & (freqs <= 0.1)), n=n_vols, axis=-1)
    np.testing.assert_allclose(np.corrcoef(slow), coupling, atol=1e-8)
    assert 0.7 < (slow**2).sum() / (latent**2).sum() < 0.9


def test_motion_is_realistic(cohort: tuple[Path, dict]) -> None:
    root, truth = cohort
    mean_fd = {}
    for s in subjects(truth, fmri=True):
        table = confounds_of(root, s["participant_id"], "1")
        mean_fd[s["participant_id"]] = table["framewise_displacement"].mean()
        assert table[MOTION[:3]].abs().max().max() < 10  # mm
        assert table[MOTION[3:]].abs().max().max() < 0.2  # radians
    assert 0.02 < np.median(list(mean_fd.values())) < 0.4


# --- arguments and output folder --------------------------------------------------------------


def test_unknown_effect_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="'fmri_fcc'.*fmri_fc, eeg_power, eeg_fc, multimodal, site"
    ):
        generate_cohort(tmp_path / "out", 2, 0, effects={"fmri_fcc": 0.2})
    with pytest.raises(ValueError, match="'site' must be a finite number >= 0"):
        generate_cohort(tmp_path / "out", 2, 0, effects={"site": -1})
    with pytest.raises(ValueError, match="n_subjects"):
        generate_cohort(tmp_path / "out", 0, 0)
    assert not (tmp_path / "out").exists()


def test_refuses_a_folder_that_is_not_a_synthetic_cohort(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("precious")
    with pytest.raises(ValueError, match="not empty"):
        generate_cohort(tmp_path, 2, 0, **TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]


def test_failure_leaves_no_cohort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcsp.synth import _cohort

    def crash(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(_cohort, "_write_top_level", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_cohort(tmp_path / "out", 2, 0, **TINY)
    assert list(tmp_path.iterdir()) == []


def test_same_seed_same_bytes_whatever_n_jobs(tmp_path: Path) -> None:
    first, second, other = tmp_path / "first", tmp_path / "second", tmp_path / "other"
    generate_cohort(first, 3, 5, n_jobs=1, **TINY)
    second.mkdir()  # an empty folder may be used
    generate_cohort(second, 3, 5, n_jobs=2, **TINY)
    generate_cohort(second, 3, 5, n_jobs=2, **TINY)  # overwriting a synthetic cohort is fine
    generate_cohort(other, 3, 6, n_jobs=1, **TINY)
    hashes = file_hashes(first)
    assert len(hashes) > 20
    assert file_hashes(second) == hashes
    other_hashes = file_hashes(other)
    data = [name for name in hashes if name.endswith((".eeg", "preproc_bold.nii.gz"))]
    assert data and all(hashes[n] != other_hashes.get(n) for n in data)


# --- planted effects, visible in simple statistics on the raw synthetic data -------------------
# Group tests compare group means (margins small: ~2-5 subjects per group). Null-contrast tests
# regenerate the same seed with the group effects off: the same subjects and noise, so every
# affected subject must move by the planted amount and nobody else may change at all.

GROUP_EFFECTS_OFF = {"eeg_power": 0.0, "eeg_fc": 0.0, "fmri_fc": 0.0}


@pytest.fixture(scope="module")
def null_cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth_null") / "bids"
    truth = generate_cohort(
        root,
        N_SUBJECTS,
        SEED,
        eeg_duration_s=EEG_SECONDS,
        fmri_volumes=VOLUMES,
        effects=GROUP_EFFECTS_OFF,
        n_jobs=2,
    )
    return root, truth


def band_log_power(raw: mne.io.BaseRaw, channels: list[str], band: list[float]) -> float:
    if not channels:  # the region's only channel is bad
        return np.nan
    data = raw.get_data(picks=channels)
    freqs, power = welch(data, raw.info["sfreq"], nperseg=int(2 * raw.info["sfreq"]))
    keep = (freqs >= band[0]) & (freqs < band[1])
    return float(np.log(power[:, keep].mean(axis=1)).mean())


def lagged_alpha_coupling(raw: mne.io.BaseRaw, front: list[str], back: list[str]) -> float:
    """Mean imaginary alpha coherency (sign: frontal lags parietal) of two channel averages."""
    if not front or not back:
        return np.nan
    x, y = raw.get_data(picks=front).mean(axis=0), raw.get_data(picks=back).mean(axis=0)
    sfreq = raw.info["sfreq"]
    freqs, cross = csd(x, y, sfreq, nperseg=int(2 * sfreq))
    _, auto_x = welch(x, sfreq, nperseg=int(2 * sfreq))
    _, auto_y = welch(y, sfreq, nperseg=int(2 * sfreq))
    alpha = (freqs >= 8) & (freqs < 13)
    return float((cross[alpha] / np.sqrt(auto_x[alpha] * auto_y[alpha])).imag.mean())


def eeg_subject_features(root: Path, truth: dict, subject: dict) -> dict[str, float]:
    """Theta/beta ratio, frontal alpha asymmetry and lagged coupling, averaged over recordings."""
    regions = truth["eeg"]["regions"][subject["site"]]
    bands = truth["eeg"]["bands_hz"]
    rows = []
    for session in subject["sessions"]:
        for task in truth["eeg"]["tasks"]:
            raw = read_eeg(root, subject["participant_id"], session, task).load_data()
            key = (subject["participant_id"], session, task)
            raw.info["bads"] = [
                b["channel"]
                for b in truth["bad_channels"]
                if (b["participant_id"], b["session"], b["task"]) == key
            ]
            raw.pick("eeg", exclude="bads").set_eeg_reference("average", verbose=False)

            def region(*names: str, raw: mne.io.BaseRaw = raw) -> list[str]:
                return [ch for n in names for ch in regions[n] if ch in raw.ch_names]

            theta = band_log_power(raw, region("frontal_midline"), bands["theta"])
            beta = band_log_power(raw, region("central_left", "central_right"), bands["beta"])
            right = band_log_power(raw, region("frontal_right"), bands["alpha"])
            left = band_log_power(raw, region("frontal_left"), bands["alpha"])
            front = region("frontal_left", "frontal_right")
            rows.append(
                {
                    "theta_beta": theta - beta,
                    "asymmetry": right - left,
                    "lagged_coupling": lagged_alpha_coupling(raw, front, region("parietal")),
                }
            )
    return pd.DataFrame(rows).mean().to_dict()


def network_fc(root: Path, truth: dict, subject: dict, session: str = "1") -> dict[str, float]:
    """Mean Fisher-z FC between networks from 6 mm spheres around the ground-truth ROIs.

    Simple denoising: non-steady-state volumes dropped; quadratic trend, the six motion
    parameters and the global signal regressed out.
    """
    sub = subject["participant_id"]
    n_dummy = truth["sites"][subject["site"]]["fmri"]["non_steady_state_volumes"]
    image = nib.load(preproc(root, sub, session))
    data = np.asarray(image.dataobj, dtype=np.float32)[..., n_dummy:]
    ijk = np.argwhere(data[..., 0] > 0)
    xyz = nib.affines.apply_affine(image.affine, ijk)
    series, networks = [], []
    for roi in truth["fmri"]["rois"]:
        near = np.linalg.norm(xyz - [roi["x"], roi["y"], roi["z"]], axis=1) <= 6
        if near.any():
            series.append(data[tuple(ijk[near].T)].mean(axis=0))
            networks.append(roi["network"])
    series = np.asarray(series)
    confounds = confounds_of(root, sub, session)[[*MOTION, "global_signal"]].to_numpy()[n_dummy:]
    time = np.arange(series.shape[1]) / series.shape[1]
    design = np.column_stack([np.polynomial.polynomial.polyvander(time, 2), confounds])
    series = series - (design @ np.linalg.lstsq(design, series.T, rcond=None)[0]).T
    corr = np.corrcoef(series)
    np.fill_diagonal(corr, np.nan)
    z = np.arctanh(np.clip(corr, -0.999, 0.999))
    networks = np.array(networks)

    def between(a: str, b: str) -> float:
        return float(np.nanmean(z[np.ix_(networks == a, networks == b)]))

    return {
        "dmn_smd": between("DefaultMode", "SomatomotorDorsal"),
        "fp_dmn": between("FrontoParietal", "DefaultMode"),
        "within_dmn": between("DefaultMode", "DefaultMode"),
        "dmn_visual": between("DefaultMode", "Visual"),
    }


def feature_table(root: Path, truth: dict, modality: str) -> pd.DataFrame:
    features = eeg_subject_features if modality == "eeg" else network_fc
    rows = [
        {
            "subject": s["participant_id"],
            "diagnosis": s["diagnosis"],
            "sign": s["sign_eeg"] if modality == "eeg" else s["sign_fmri"],
            **features(root, truth, s),
        }
        for s in subjects(truth, **{modality: True})
    ]
    return pd.DataFrame(rows).set_index("subject")


@pytest.fixture(scope="module")
def eeg_table(cohort: tuple[Path, dict]) -> pd.DataFrame:
    return feature_table(*cohort, "eeg")


@pytest.fixture(scope="module")
def fmri_table(cohort: tuple[Path, dict]) -> pd.DataFrame:
    return feature_table(*cohort, "fmri")


def test_eeg_power_effect_adhd_theta_beta_ratio(eeg_table: pd.DataFrame) -> None:
    means = eeg_table.groupby("diagnosis")["theta_beta"].mean()
    assert means["ADHD"] > means["control"] + 0.1


def test_eeg_fc_effect_adhd_lagged_alpha_coupling(eeg_table: pd.DataFrame) -> None:
    means = eeg_table.groupby("diagnosis")["lagged_coupling"].mean()
    assert means["ADHD"] > means["control"] + 0.02


def test_eeg_side_of_the_multimodal_effect(eeg_table: pd.DataFrame) -> None:
    # Frontal alpha asymmetry follows s_e (the sign only shows in the data).
    means = eeg_table.groupby("sign")["asymmetry"].mean()
    assert means[1] > means[-1] + 0.05


def test_fmri_network_structure(fmri_table: pd.DataFrame) -> None:
    assert (fmri_table["within_dmn"] > fmri_table["dmn_visual"] + 0.1).all()


def test_fmri_fc_effect_asd_hypoconnectivity(fmri_table: pd.DataFrame) -> None:
    means = fmri_table.groupby("diagnosis")["dmn_smd"].mean()
    assert means["ASD"] < means["control"] - 0.03


def test_fmri_side_of_the_multimodal_effect(fmri_table: pd.DataFrame) -> None:
    by_sign = fmri_table.groupby("sign")["fp_dmn"]
    assert by_sign.min()[1] > by_sign.max()[-1]  # FrontoParietal-DefaultMode FC separates s_f


def test_multimodal_signs_are_concordant_only_in_mdd(cohort: tuple[Path, dict]) -> None:
    _, truth = cohort
    for s in truth["subjects"]:
        if s["diagnosis"] == "MDD":
            assert s["sign_fmri"] == s["sign_eeg"]
    both = pd.DataFrame(subjects(truth, eeg=True, fmri=True))
    product = (both.sign_fmri * both.sign_eeg).groupby(both.diagnosis)
    assert product.mean()["MDD"] == 1
    # Balanced by design: within each group, signs and (outside MDD) products sum to 0 or +-1.
    assert product.sum().drop("MDD").abs().max() <= 1
    assert both.groupby("diagnosis")["sign_fmri"].sum().abs().max() <= 1


def test_group_effects_change_only_their_group(
    cohort: tuple[Path, dict], null_cohort: tuple[Path, dict]
) -> None:
    (root, truth), (null_root, _) = cohort, null_cohort
    on, off = file_hashes(root), file_hashes(null_root)
    assert on.keys() == off.keys()
    for s in truth["subjects"]:
        sub = s["participant_id"]
        eeg = {n for n in on if n.startswith(f"{sub}/") and n.endswith("_eeg.eeg")}
        bold = {n for n in on if f"/{sub}/" in n and n.endswith("preproc_bold.nii.gz")}
        changed = {n for n in eeg | bold if on[n] != off[n]}
        expected = {"ADHD": eeg, "ASD": bold}.get(s["diagnosis"], set())
        assert changed == expected, sub


def test_group_effects_move_every_affected_subject(
    cohort: tuple[Path, dict], null_cohort: tuple[Path, dict]
) -> None:
    (root, truth), (null_root, null_truth) = cohort, null_cohort
    for s in subjects(truth, eeg=True):
        if s["diagnosis"] == "ADHD":
            on = eeg_subject_features(root, truth, s)
            off = eeg_subject_features(null_root, null_truth, s)
            assert on["theta_beta"] > off["theta_beta"] + 0.3
            assert on["lagged_coupling"] > off["lagged_coupling"] + 0.02
    for s in subjects(truth, fmri=True):
        if s["diagnosis"] == "ASD":
            on, off = network_fc(root, truth, s), network_fc(null_root, null_truth, s)
            assert on["dmn_smd"] < off["dmn_smd"] - 0.05
