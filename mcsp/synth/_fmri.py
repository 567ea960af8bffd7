"""Synthetic fMRIPrep outputs: MNI152 BOLD with planted network structure, brain mask, confounds.

Every brain voxel within ROI_RADIUS_MM of a Seitzman-300 ROI centre belongs to the nearest ROI.
ROI signals mix their network's latent signal (share WITHIN_NETWORK_LOADING of the variance) with
an ROI-specific one; both are band-limited to ~0.01-0.1 Hz. The network signals are whitened and
coloured so that their sample correlation equals the subject's coupling matrix exactly, within the
0.01-0.1 Hz band that a resting-state band-pass keeps as well as outside it (the planted effects
are realised in every subject, not only in expectation). Voxels outside the ROIs carry noise,
drift, physiological and motion-related signal only, so the confounds (motion, white matter, CSF)
carry no neural signal. Only brain voxels are simulated. Every site records runs of the same
duration (see ``REFERENCE_TR``), more volumes at a shorter TR.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from mcsp.synth._design import (
    FMRI_FC_NETWORKS,
    MULTIMODAL_NETWORKS,
    Site,
    SubjectPlan,
    shaped_noise,
)

SPACE = "MNI152NLin2009cAsym"
ROI_RADIUS_MM = 8.0
SLOW_BAND_HZ = (0.01, 0.1)  # resting BOLD fluctuations; the planted coupling is exact in it
WITHIN_NETWORK_LOADING = 0.6
BASE_COUPLING = 0.15
NETWORK_COUPLING = {
    ("DefaultMode", "SomatomotorDorsal"): 0.35,
    ("DefaultMode", "FrontoParietal"): 0.25,
    ("DefaultMode", "DorsalAttention"): -0.25,
    ("DefaultMode", "MedialTemporalLobe"): 0.4,
    ("DefaultMode", "ParietoMedial"): 0.45,
    ("SomatomotorDorsal", "SomatomotorLateral"): 0.5,
    ("SomatomotorDorsal", "Auditory"): 0.4,
    ("Visual", "DorsalAttention"): 0.35,
    ("CinguloOpercular", "Salience"): 0.4,
    ("FrontoParietal", "DorsalAttention"): 0.3,
}
COUPLING_JITTER_SD = 0.05
BOLD_SIGNAL_PCT = 1.0  # std of the ROI signal, % of the mean
NOISE_PCT = 0.8  # std of the voxel noise, % of the mean
PHYSIO_PCT = (0.3, 0.2, 0.6)  # global physiological signal in grey/other, white matter, CSF
TISSUE_CONTRAST = (1.0, 0.8, 1.25)
MOTION_PCT_PER_MM = 1.0
FD_THRESHOLD_MM = 0.5
STD_DVARS_THRESHOLD = 1.5
HEAD_RADIUS_MM = 50.0  # FD (Power et al.)
RMSD_RADIUS_MM = 80.0  # RMS deviation (Jenkinson)


@dataclass(frozen=True)
class FmriGeometry:
    """Brain voxels of the MNI grid with their ROI and tissue; ROIs with their network."""

    affine: np.ndarray
    shape: tuple[int, int, int]
    flat_index: np.ndarray  # (V,) C-order index of each brain voxel in the grid
    coords: np.ndarray  # (V, 3) mm
    roi: np.ndarray  # (V,) ROI index or -1
    tissue: np.ndarray  # (V,) 0 grey matter/other, 1 white matter, 2 CSF (outside ROIs)
    roi_xyz: np.ndarray  # (R, 3)
    roi_network: tuple[str, ...]
    roi_region: tuple[str, ...]
    networks: tuple[str, ...]  # networks with a latent signal (all but "unassigned")

    @property
    def roi_network_index(self) -> np.ndarray:
        lookup = {name: k for k, name in enumerate(self.networks)}
        return np.array([lookup.get(name, -1) for name in self.roi_network])

    def roi_table(self) -> list[dict]:
        counts = np.bincount(self.roi[self.roi >= 0], minlength=len(self.roi_xyz))
        return [
            {
                "index": i,
                "x": float(x),
                "y": float(y),
                "z": float(z),
                "network": self.roi_network[i],
                "region": self.roi_region[i],
                "n_voxels": int(counts[i]),
            }
            for i, (x, y, z) in enumerate(self.roi_xyz)
        ]

    def label_image(self) -> nib.Nifti1Image:
        """ROI label image (ROI index + 1, 0 outside), as used to plant the signals."""
        labels = np.zeros(int(np.prod(self.shape)), dtype=np.int16)
        labels[self.flat_index] = self.roi + 1
        return _nifti(labels.reshape(self.shape), self.affine)


@lru_cache
def fmri_geometry(voxel_size: int) -> FmriGeometry:
    """Grid, brain voxels, ROI assignment and tissue classes at ``voxel_size`` mm."""
    from nilearn import datasets

    mask_img = datasets.load_mni152_brain_mask(resolution=voxel_size)
    mask = np.asarray(mask_img.dataobj) > 0
    ijk = np.argwhere(mask)
    coords = nib.affines.apply_affine(mask_img.affine, ijk)
    seitzman = datasets.fetch_coords_seitzman_2018()
    roi_xyz = seitzman.rois[["x", "y", "z"]].to_numpy(dtype=float)
    dist, nearest = cKDTree(roi_xyz).query(coords, distance_upper_bound=ROI_RADIUS_MM)
    roi = np.where(np.isfinite(dist), nearest, -1)
    grey = np.asarray(datasets.load_mni152_gm_template(resolution=voxel_size).dataobj)[mask]
    white = np.asarray(datasets.load_mni152_wm_template(resolution=voxel_size).dataobj)[mask]
    tissue = np.zeros(len(coords), dtype=np.int8)
    tissue[(white > 0.8) & (roi < 0)] = 1
    tissue[(1 - grey - white > 0.6) & (roi < 0)] = 2
    networks = tuple(str(n) for n in seitzman.networks)
    return FmriGeometry(
        affine=mask_img.affine,
        shape=mask.shape,
        flat_index=np.ravel_multi_index(ijk.T, mask.shape),
        coords=coords.astype(np.float32),
        roi=roi.astype(np.int32),
        tissue=tissue,
        roi_xyz=roi_xyz,
        roi_network=networks,
        roi_region=tuple(str(r) for r in seitzman.regions),
        networks=tuple(sorted(set(networks) - {"unassigned"})),
    )


def coupling_matrix(
    networks: tuple[str, ...], plan: SubjectPlan, jitter_seed: int, effects: dict[str, float]
) -> np.ndarray:
    """The subject's latent network correlation matrix, effects included, made positive definite."""
    index = {name: k for k, name in enumerate(networks)}
    coupling = np.full((len(networks), len(networks)), BASE_COUPLING)
    for (a, b), value in NETWORK_COUPLING.items():
        coupling[index[a], index[b]] = coupling[index[b], index[a]] = value
    jitter = np.random.default_rng(jitter_seed).normal(0, COUPLING_JITTER_SD, coupling.shape)
    coupling += np.triu(jitter, 1) + np.triu(jitter, 1).T
    a, b = (index[n] for n in FMRI_FC_NETWORKS)
    if plan.diagnosis == "ASD":
        coupling[a, b] = coupling[b, a] = coupling[a, b] - effects["fmri_fc"]
    a, b = (index[n] for n in MULTIMODAL_NETWORKS)
    coupling[a, b] = coupling[b, a] = coupling[a, b] + plan.sign_fmri * effects["multimodal"]
    np.fill_diagonal(coupling, 1.0)
    values, vectors = np.linalg.eigh(coupling)
    coupling = (vectors * np.maximum(values, 0.05)) @ vectors.T
    scale = np.sqrt(np.diag(coupling))
    return coupling / np.outer(scale, scale)


def _bold_spectrum(freqs: np.ndarray) -> np.ndarray:
    """Amplitude: flat in SLOW_BAND_HZ, Gaussian roll-off outside, a floor of 0.1."""
    low, high = SLOW_BAND_HZ
    below = np.exp(-0.5 * ((freqs - low) / 0.005) ** 2)
    above = np.exp(-0.5 * ((freqs - high) / 0.02) ** 2)
    band = np.where(freqs < low, below, np.where(freqs > high, above, 1.0))
    return 0.1 + 0.9 * band


def _whiten(series: np.ndarray) -> np.ndarray:
    """Rows (n, T) made uncorrelated with unit sample variance (symmetric whitening)."""
    values, vectors = np.linalg.eigh(series @ series.T / series.shape[1])
    return (vectors / np.sqrt(values)) @ vectors.T @ series


def _network_signals(
    rng: np.random.Generator, coupling: np.ndarray, n_vols: int, tr: float
) -> np.ndarray:
    """Latent network signals whose sample correlation is ``coupling`` (when n_vols allows).

    The correlation is exact within the slow band (SLOW_BAND_HZ, what a band-pass keeps) and
    outside it, each part keeping its share of the power; runs too short for that (no more slow
    frequencies than networks) get it over the whole series only.
    """
    n = len(coupling)
    latent = shaped_noise(rng, n, n_vols, tr, _bold_spectrum)
    freqs = np.fft.rfftfreq(n_vols, tr)
    slow = (freqs >= SLOW_BAND_HZ[0]) & (freqs <= SLOW_BAND_HZ[1])
    fast = ~slow & (freqs > 0)
    if min(slow.sum(), fast.sum()) > n:
        spectrum = np.fft.rfft(latent, axis=-1)
        parts = [np.fft.irfft(spectrum * band, n=n_vols, axis=-1) for band in (slow, fast)]
        latent = sum(np.sqrt(np.mean(part**2)) * _whiten(part) for part in parts)
    elif n_vols > 2 * n:
        latent = _whiten(latent)
    return np.linalg.cholesky(coupling) @ latent


def _motion(rng: np.random.Generator, n_vols: int, high_motion: bool) -> np.ndarray:
    """Realignment parameters (n_vols, 6): mm for translations, radians for rotations."""
    step = 0.05 if high_motion else 0.02
    params = np.cumsum(rng.normal(0, step, (n_vols, 6)), axis=0)
    n_spikes = rng.poisson(n_vols * (0.05 if high_motion else 0.01))
    for _ in range(n_spikes):
        onset, length = int(rng.integers(1, n_vols)), int(rng.integers(1, 4))
        direction = rng.normal(size=6)
        size = rng.uniform(0.3, 1.2) * (1.5 if high_motion else 1)
        params[onset : onset + length] += size * direction / np.linalg.norm(direction)
    params -= np.median(params, axis=0)
    params[:, 3:] /= HEAD_RADIUS_MM
    return params


def framewise_displacement(motion: np.ndarray) -> np.ndarray:
    """Power's FD (mm) from realignment parameters; the first value is NaN."""
    delta = np.abs(np.diff(motion, axis=0))
    fd = delta[:, :3].sum(axis=1) + HEAD_RADIUS_MM * delta[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def _roi_signals(
    rng: np.random.Generator, geometry: FmriGeometry, coupling: np.ndarray, n_vols: int, tr: float
) -> np.ndarray:
    """ROI time series (R, T): network latent (share WITHIN_NETWORK_LOADING) + ROI-specific."""
    rois = shaped_noise(rng, len(geometry.roi_xyz), n_vols, tr, _bold_spectrum)
    latent = _network_signals(rng, coupling, n_vols, tr)
    net = geometry.roi_network_index
    assigned = net >= 0
    share = WITHIN_NETWORK_LOADING
    rois[assigned] = np.sqrt(share) * latent[net[assigned]] + np.sqrt(1 - share) * rois[assigned]
    return rois


def _motion_artefact(geometry: FmriGeometry, motion: np.ndarray) -> np.ndarray:
    """Signal change (%, (V, T)): spatial gradients x displacement, global drop at each jump."""
    unit = geometry.coords / np.abs(geometry.coords).max(axis=0)
    patterns = np.column_stack(
        [unit, unit[:, 0] * unit[:, 1], unit[:, 1] * unit[:, 2], unit[:, 0] * unit[:, 2]]
    )
    displacement = motion * np.array([1, 1, 1] + [HEAD_RADIUS_MM] * 3)
    spin_history = np.nan_to_num(framewise_displacement(motion))
    return MOTION_PCT_PER_MM * (patterns @ displacement.T - spin_history)


def _mean_image(
    rng: np.random.Generator, geometry: FmriGeometry, acq: dict[str, float | str]
) -> np.ndarray:
    """Voxel mean intensity: site level x tissue contrast x linear bias field x texture."""
    axis = "xyz".index(acq["bias_field_axis"])
    unit = geometry.coords[:, axis] / np.abs(geometry.coords[:, axis]).max()
    bias = 1 + acq["bias_field_slope"] * unit
    mean = acq["mean_intensity"] * np.asarray(TISSUE_CONTRAST)[geometry.tissue] * bias
    return mean * (1 + 0.02 * rng.standard_normal(len(mean)))


def simulate_bold(
    rng: np.random.Generator,
    geometry: FmriGeometry,
    coupling: np.ndarray,
    traits: dict,
    site: Site,
    n_vols: int,
    site_size: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Brain-voxel BOLD (V, T) as int16 scanner units, and the realignment parameters."""
    acq = site.acquisition(site_size)["fmri"]
    rois = _roi_signals(rng, geometry, coupling, n_vols, site.tr)
    noise_sd = NOISE_PCT * acq["noise_factor"] * traits["bold_noise"]
    pct = rng.standard_normal((len(geometry.coords), n_vols), dtype=np.float32)
    pct *= np.float32(noise_sd)
    in_roi = geometry.roi >= 0
    amplitude = BOLD_SIGNAL_PCT * traits["bold_amplitude"] * rng.uniform(0.7, 1.3, in_roi.sum())
    pct[in_roi] += amplitude[:, None] * rois[geometry.roi[in_roi]]
    physio = shaped_noise(rng, 1, n_vols, site.tr, lambda f: np.exp(-0.5 * (f / 0.05) ** 2))[0]
    pct += np.outer(np.asarray(PHYSIO_PCT)[geometry.tissue], physio)
    time = np.linspace(-1, 1, n_vols)
    drift = rng.normal(0, 1.0) * time + rng.normal(0, 0.5) * (time**2 - 1 / 3)
    pct += np.outer(rng.uniform(0.5, 1.5, len(pct)), drift)
    motion = _motion(rng, n_vols, traits["high_motion"])
    pct += _motion_artefact(geometry, motion)
    dummy = np.ones(n_vols)  # T1 saturation of the first volumes
    dummy[: site.n_dummy] += 0.6 * 0.4 ** np.arange(min(site.n_dummy, n_vols))
    bold = np.outer(_mean_image(rng, geometry, acq), dummy) * (1 + pct / 100)
    return np.clip(np.rint(bold), 0, np.iinfo(np.int16).max).astype(np.int16), motion


def _cosine_basis(n_vols: int, tr: float, period_s: float = 128.0) -> np.ndarray:
    """fMRIPrep's discrete cosine high-pass regressors (n_vols, n), constant dropped."""
    order = int(np.floor(2 * n_vols * tr / period_s))
    k = np.arange(1, max(order, 1))
    t = np.arange(n_vols)[:, None]
    return np.sqrt(2.0 / n_vols) * np.cos(np.pi / n_vols * (t + 0.5) * k)


def _compcor(data: np.ndarray, basis: np.ndarray, n_components: int) -> tuple[np.ndarray, list]:
    """Principal components (T, n) of high-passed, variance-normalised voxel series (V, T)."""
    series = data.T.astype(float)
    series -= series.mean(axis=0)
    if basis.size:
        series -= basis @ np.linalg.lstsq(basis, series, rcond=None)[0]
    std = series.std(axis=0)
    series /= np.where(std > 0, std, 1.0)
    # Left singular vectors from the small (T, T) Gram matrix: LAPACK's SVD of the tall (T, V)
    # matrix fails to converge on a few runs; eigh does not. Signs fixed for determinism.
    eigvals, eigvecs = np.linalg.eigh(series @ series.T)
    order = np.argsort(eigvals)[::-1]
    u = eigvecs[:, order]
    u *= np.where(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])] < 0, -1.0, 1.0)
    s = np.sqrt(np.clip(eigvals[order], 0, None))
    explained = s**2 / np.sum(s**2)
    meta = [
        {
            "CumulativeVarianceExplained": float(np.sum(explained[: i + 1])),
            "Retained": True,
            "SingularValue": float(s[i]),
            "VarianceExplained": float(explained[i]),
        }
        for i in range(n_components)
    ]
    return u[:, :n_components], meta


def _dvars(bold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardised DVARS (Nichols) and DVARS of intensity-normalised data (median 1000)."""
    data = bold.astype(np.float32)
    data *= np.float32(1000.0 / np.median(data.mean(axis=1)))
    dvars = np.sqrt(np.mean(np.diff(data, axis=1) ** 2, axis=0))
    q75, q25 = np.percentile(data, [75, 25], axis=1)
    robust_sd = (q75 - q25) / 1.349
    centred = data - data.mean(axis=1, keepdims=True)
    denom = np.sum(centred**2, axis=1)
    ar1 = np.sum(centred[:, 1:] * centred[:, :-1], axis=1) / np.where(denom > 0, denom, 1)
    expected = np.sqrt(2 * (1 - ar1)) * robust_sd
    nan = np.array([np.nan])
    std_dvars = dvars / expected[expected > 0].mean()
    return np.concatenate([nan, std_dvars]), np.concatenate([nan, dvars])


def _with_expansions(name: str, series: np.ndarray) -> dict[str, np.ndarray]:
    derivative = np.concatenate([[np.nan], np.diff(series)])
    return {
        name: series,
        f"{name}_derivative1": derivative,
        f"{name}_derivative1_power2": derivative**2,
        f"{name}_power2": series**2,
    }


def confounds(
    bold: np.ndarray, motion: np.ndarray, geometry: FmriGeometry, tr: float, n_dummy: int
) -> tuple[pd.DataFrame, dict]:
    """fMRIPrep-style confounds table and its JSON metadata for one run."""
    n_vols = bold.shape[1]
    data = bold.astype(np.float32)
    white, csf = geometry.tissue == 1, geometry.tissue == 2
    basis = _cosine_basis(n_vols, tr)
    detrended = data - data.mean(axis=1, keepdims=True)
    variance = detrended.var(axis=1)
    top = variance >= np.quantile(variance, 0.98)
    columns: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    for name, voxels in [("global_signal", slice(None)), ("csf", csf), ("white_matter", white)]:
        columns.update(_with_expansions(name, data[voxels].mean(axis=0).astype(float)))
    columns["csf_wm"] = data[csf | white].mean(axis=0).astype(float)
    columns["tcompcor"] = data[top].mean(axis=0).astype(float)
    for name in ("global_signal", "csf", "white_matter", "csf_wm", "tcompcor"):
        meta[name] = {"Method": "Mean"}
    columns["std_dvars"], columns["dvars"] = _dvars(bold)
    fd = framewise_displacement(motion)
    columns["framewise_displacement"] = fd
    delta = np.diff(motion, axis=0)
    rmsd = np.sqrt((delta[:, :3] ** 2).sum(1) + RMSD_RADIUS_MM**2 / 5 * (delta[:, 3:] ** 2).sum(1))
    columns["rmsd"] = np.concatenate([[np.nan], rmsd])
    for prefix, voxels, n, extra in [
        ("t", top, 3, {"Method": "tCompCor"}),
        ("c", csf, 3, {"Mask": "CSF", "Method": "aCompCor"}),
        ("w", white, 3, {"Mask": "WM", "Method": "aCompCor"}),
        ("a", csf | white, 6, {"Mask": "combined", "Method": "aCompCor"}),
    ]:
        components, info = _compcor(data[voxels], basis, n)
        for i in range(n):
            columns[f"{prefix}_comp_cor_{i:02d}"] = components[:, i]
            meta[f"{prefix}_comp_cor_{i:02d}"] = {**info[i], **extra}
    for i in range(basis.shape[1]):
        columns[f"cosine{i:02d}"] = basis[:, i]
    for i in range(min(n_dummy, n_vols)):
        columns[f"non_steady_state_outlier{i:02d}"] = (np.arange(n_vols) == i).astype(float)
    for i, name in enumerate(["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]):
        columns.update(_with_expansions(name, motion[:, i]))
    outliers = np.flatnonzero((fd > FD_THRESHOLD_MM) | (columns["std_dvars"] > STD_DVARS_THRESHOLD))
    for i, volume in enumerate(outliers):
        columns[f"motion_outlier{i:02d}"] = (np.arange(n_vols) == volume).astype(float)
    return pd.DataFrame(columns), meta


def _nifti(data: np.ndarray, affine: np.ndarray, tr: float | None = None) -> nib.Nifti1Image:
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_sform(affine, code=4)  # MNI
    image.set_qform(affine, code=4)
    if tr is not None:
        zooms = image.header.get_zooms()
        image.header.set_zooms((*zooms[:3], tr))
    return image


def _json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=4) + "\n")


def write_fmriprep_run(
    func_dir: Path,
    stem: str,
    bold: np.ndarray,
    motion: np.ndarray,
    geometry: FmriGeometry,
    site: Site,
    raw_source: str,
) -> dict:
    """Preprocessed BOLD, brain mask and confounds of one run as fMRIPrep names them."""
    func_dir.mkdir(parents=True, exist_ok=True)
    n_vols = bold.shape[1]
    grid = np.zeros((int(np.prod(geometry.shape)), n_vols), dtype=np.int16)
    grid[geometry.flat_index] = bold
    prefix = f"{stem}_space-{SPACE}"
    _nifti(grid.reshape(*geometry.shape, n_vols), geometry.affine, site.tr).to_filename(
        func_dir / f"{prefix}_desc-preproc_bold.nii.gz"
    )
    sidecar = {
        "RepetitionTime": site.tr,
        "SkullStripped": False,
        "SliceTimingCorrected": False,
        "TaskName": "rest",
        "Sources": [raw_source],
    }
    _json(func_dir / f"{prefix}_desc-preproc_bold.json", sidecar)
    mask = np.zeros(int(np.prod(geometry.shape)), dtype=np.uint8)
    mask[geometry.flat_index] = 1
    _nifti(mask.reshape(geometry.shape), geometry.affine).to_filename(
        func_dir / f"{prefix}_desc-brain_mask.nii.gz"
    )
    _json(
        func_dir / f"{prefix}_desc-brain_mask.json", {"Type": "Brain", "RawSources": [raw_source]}
    )
    table, meta = confounds(bold, motion, geometry, site.tr, site.n_dummy)
    table.to_csv(
        func_dir / f"{stem}_desc-confounds_timeseries.tsv",
        sep="\t",
        index=False,
        na_rep="n/a",
        float_format="%.8g",
    )
    _json(func_dir / f"{stem}_desc-confounds_timeseries.json", meta)
    fd = table["framewise_displacement"].to_numpy()
    return {
        "mean_fd_mm": float(np.nanmean(fd)),
        "n_fd_above_0p5": int(np.sum(fd > FD_THRESHOLD_MM)),
        "n_motion_outliers": int(table.columns.str.startswith("motion_outlier").sum()),
        "non_steady_state_volumes": site.n_dummy,
    }


def write_raw_func(func_dir: Path, stem: str, n_vols: int, site: Site) -> str:
    """A tiny placeholder raw BOLD (2x2x2 voxels) with a valid header and sidecar."""
    func_dir.mkdir(parents=True, exist_ok=True)
    data = np.full((2, 2, 2, n_vols), 1000, dtype=np.int16)
    affine = np.diag([80.0, 80.0, 80.0, 1.0])
    affine[:3, 3] = -80
    name = f"{stem}_bold.nii.gz"
    _nifti(data, affine, site.tr).to_filename(func_dir / name)
    sidecar = {
        "TaskName": "rest",
        "RepetitionTime": site.tr,
        "Manufacturer": site.scanner,
        "MagneticFieldStrength": 3,
        "EchoTime": 0.03,
        "FlipAngle": 70 if site.tr >= 2 else 52,
    }
    _json(func_dir / f"{stem}_bold.json", sidecar)
    return name


def write_raw_t1w(anat_dir: Path, stem: str) -> None:
    """A tiny placeholder T1w: a coarse ellipsoid head."""
    anat_dir.mkdir(parents=True, exist_ok=True)
    grid = np.mgrid[-1:1:8j, -1:1:10j, -1:1:8j]
    head = ((grid**2).sum(axis=0) < 1).astype(np.uint8) * 100
    affine = np.diag([20.0, 20.0, 20.0, 1.0])
    affine[:3, 3] = [-70, -100, -70]
    _nifti(head, affine).to_filename(anat_dir / f"{stem}_T1w.nii.gz")
