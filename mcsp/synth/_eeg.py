"""Synthetic resting EEG: a few cortical sources mixed to a real montage by a smooth forward model.

Sources sit under named electrodes of the BioSemi-64 cap (a common head frame for every montage):
alpha (posterior, frontal), frontal-midline theta, central beta, and a 1/f background from many
sources spread over the head. The forward model is a Gaussian fall-off of the distance between
source and electrode directions on the unit head sphere, so the field is spatially smooth (robust
bad-channel detection such as pyprep's RANSAC can predict each channel from its neighbours).
Sensor noise, mains interference, electrode drift, eye blinks and, in the recordings the cohort
plan picks (~10%), one bad channel (flat or very noisy) follow.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import mne
import mne_bids
import numpy as np

from mcsp.synth._design import (
    EEG_TASKS,
    Site,
    SubjectPlan,
    acquisition_time,
    shaped_noise,
)

BACKGROUND_WIDTH = 0.5
BACKGROUND_UV = 12.0  # median channel std of the 1/f background
EYE_WIDTH = 0.3
EYE_DIRECTION = (0.0, 0.95, -0.3)
REGION_RADIUS = 0.3  # channels within this chord of a source make its region
SENSOR_NOISE_UV = 1.0
DRIFT_UV = 3.0
CHANNEL_GAIN_SD = 0.05  # log-amplitude SD of electrode gains (calibrated amplifiers: small)
BAD_NOISE_UV = 60.0
COUPLING_LAG_S = 0.025  # frontal alpha lags parietal alpha (~90 degrees at 10 Hz)

# Named sources: electrode of the BioSemi-64 cap above the source, band, Gaussian width of the
# source's field on the unit head sphere (chord units).
SOURCES = {
    "occipital_left": ("O1", "alpha", 0.8),
    "occipital_right": ("O2", "alpha", 0.8),
    "parietal": ("Pz", "alpha", 0.8),
    "frontal_left": ("F3", "alpha", 0.5),
    "frontal_right": ("F4", "alpha", 0.5),
    "frontal_midline": ("Fz", "theta", 0.6),
    "central_left": ("C3", "beta", 0.6),
    "central_right": ("C4", "beta", 0.6),
}
# Peak amplitude (µV at the nearest electrode) per task.
AMPLITUDE_UV = {
    "posterior_alpha": {"eyesopen": 5.0, "eyesclosed": 15.0},
    "frontal_alpha": {"eyesopen": 5.0, "eyesclosed": 8.0},
    "theta": {"eyesopen": 7.0, "eyesclosed": 7.0},
    "beta": {"eyesopen": 5.0, "eyesclosed": 5.0},
}
TASK_DESCRIPTION = {"eyesopen": "eyes open", "eyesclosed": "eyes closed"}
BLINK_RATE_HZ = {"eyesopen": 0.3, "eyesclosed": 0.03}
PLACEMENT = {"biosemi64": "10-10", "biosemi32": "10-20", "GSN-HydroCel-129": "GSN-HydroCel-129"}


def _fit_sphere(xyz: np.ndarray) -> np.ndarray:
    """Centre of the least-squares sphere through points ``xyz`` (n, 3)."""
    design = np.column_stack([2 * xyz, np.ones(len(xyz))])
    solution, *_ = np.linalg.lstsq(design, (xyz**2).sum(axis=1), rcond=None)
    return solution[:3]


@lru_cache
def montage_directions(montage: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Channel names and unit directions from the centre of the montage's fitted sphere."""
    positions = mne.channels.make_standard_montage(montage).get_positions()["ch_pos"]
    xyz = np.array(list(positions.values()))
    directions = xyz - _fit_sphere(xyz)
    return tuple(positions), directions / np.linalg.norm(directions, axis=1, keepdims=True)


def _fibonacci_directions(n: int) -> np.ndarray:
    """Quasi-uniform unit directions on the sphere (background sources)."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z**2)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


@lru_cache
def source_directions() -> dict[str, np.ndarray]:
    """Unit direction of each named source (under its BioSemi-64 electrode)."""
    names, directions = montage_directions("biosemi64")
    return {src: directions[names.index(ch)] for src, (ch, *_) in SOURCES.items()}


def _gain(channels: np.ndarray, sources: np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """Gaussian forward model, shape (n_channels, n_sources); ``width`` scalar or per source."""
    dist2 = ((channels[:, None, :] - sources[None, :, :]) ** 2).sum(axis=-1)
    return np.exp(-dist2 / (2 * width**2))


def eeg_regions(site: Site) -> dict[str, list[str]]:
    """Channels nearer to a named source than to any other, within REGION_RADIUS (at least one)."""
    names, directions = montage_directions(site.montage)
    sources = np.array(list(source_directions().values()))
    dist = np.linalg.norm(directions[:, None, :] - sources[None, :, :], axis=-1)
    nearest = dist.argmin(axis=1)
    regions = {}
    for k, source in enumerate(source_directions()):
        picks = np.flatnonzero((nearest == k) & (dist[:, k] < REGION_RADIUS))
        picks = np.union1d(picks, [dist[:, k].argmin()])
        regions[source] = [names[i] for i in picks]
    return regions


def _band(peak: float, sd: float):
    return lambda f: np.exp(-0.5 * ((f - peak) / sd) ** 2)


def _source_signals(
    rng: np.random.Generator,
    plan: SubjectPlan,
    traits: dict,
    task: str,
    effects: dict[str, float],
    sfreq: float,
    n_times: int,
) -> tuple[np.ndarray, dict]:
    """Named source time series (µV at peak), in ``SOURCES`` order, and their parameters."""
    step = 1 / sfreq
    alpha = shaped_noise(rng, 5, n_times, step, _band(traits["alpha_peak_hz"], 0.6))
    theta = shaped_noise(rng, 1, n_times, step, _band(6.0, 1.0))
    beta = shaped_noise(rng, 2, n_times, step, _band(20.0, 4.0))
    adhd = plan.diagnosis == "ADHD"
    coupling = float(
        np.clip(traits["frontoparietal_alpha_coupling"] + adhd * effects["eeg_fc"], 0, 0.95)
    )
    occ_l, occ_r, parietal, front_l, front_r = alpha
    # Frontal alpha lags the parietal alpha (not zero-lag, so not mistaken for volume conduction).
    lagged = np.roll(parietal, int(round(COUPLING_LAG_S * sfreq)))
    front_l = np.sqrt(1 - coupling**2) * front_l + coupling * lagged
    front_r = np.sqrt(1 - coupling**2) * front_r + coupling * lagged
    asymmetry = traits["frontal_alpha_asymmetry"] + plan.sign_eeg * effects["multimodal"]
    a_post = AMPLITUDE_UV["posterior_alpha"][task] * traits["alpha_amplitude"]
    a_front = AMPLITUDE_UV["frontal_alpha"][task] * traits["alpha_amplitude"]
    a_theta = AMPLITUDE_UV["theta"][task] * traits["theta_amplitude"]
    a_beta = AMPLITUDE_UV["beta"][task] * traits["beta_amplitude"]
    if adhd:
        a_theta *= np.exp(effects["eeg_power"] / 2)
        a_beta *= np.exp(-effects["eeg_power"] / 2)
    signals = np.vstack(
        [
            a_post * occ_l,
            a_post * occ_r,
            0.7 * a_post * parietal,
            a_front * np.exp(-asymmetry / 4) * front_l,
            a_front * np.exp(asymmetry / 4) * front_r,
            a_theta * theta[0],
            a_beta * beta[0],
            a_beta * beta[1],
        ]
    )
    params = {
        "frontoparietal_alpha_coupling": coupling,
        "frontal_alpha_asymmetry": float(asymmetry),
        "theta_amplitude_uv": float(a_theta),
        "beta_amplitude_uv": float(a_beta),
    }
    return signals, params


def _background(
    rng: np.random.Generator, channels: np.ndarray, exponent: float, sfreq: float, n_times: int
) -> np.ndarray:
    """Spatially smooth 1/f^exponent activity, BACKGROUND_UV median channel std."""
    directions = _fibonacci_directions(64)
    gain = _gain(channels, directions, BACKGROUND_WIDTH)
    scale = BACKGROUND_UV / np.sqrt(np.median((gain**2).sum(axis=1)))

    def pink(f):
        return np.maximum(f, 0.5) ** (-exponent / 2) * (f > 0.3)

    return scale * gain @ shaped_noise(rng, len(directions), n_times, 1 / sfreq, pink)


def _blinks(
    rng: np.random.Generator, task: str, sfreq: float, n_times: int
) -> tuple[np.ndarray, int]:
    """Blink waveform at the eyes (µV): Hann-shaped deflections at Poisson times."""
    signal = np.zeros(n_times)
    n_blinks = rng.poisson(BLINK_RATE_HZ[task] * n_times / sfreq)
    for onset in np.sort(rng.integers(0, n_times, n_blinks)):
        length = int(rng.uniform(0.25, 0.4) * sfreq)
        shape = np.sin(np.linspace(0, np.pi, length)) ** 2 * rng.uniform(150, 250)
        stop = min(onset + length, n_times)
        signal[onset:stop] += shape[: stop - onset]
    return signal, int(n_blinks)


def _line_noise(
    rng: np.random.Generator, channels: np.ndarray, line_freq: float, sfreq: float, n_times: int
) -> np.ndarray:
    """Mains interference with a smooth spatial gradient and a weak third harmonic (µV)."""
    t = np.arange(n_times) / sfreq
    wave = np.sin(2 * np.pi * line_freq * t + rng.uniform(0, 2 * np.pi))
    if 3 * line_freq < sfreq / 2:
        wave += 0.2 * np.sin(2 * np.pi * 3 * line_freq * t + rng.uniform(0, 2 * np.pi))
    direction = rng.normal(size=3)
    pattern = 0.75 + 0.25 * channels @ (direction / np.linalg.norm(direction))
    return rng.uniform(1.0, 5.0) * np.outer(pattern, wave)


def _plant_bad_channel(rng: np.random.Generator, data: np.ndarray, names: tuple[str, ...]) -> dict:
    """Make one channel of ``data`` (µV, in place) flat or very noisy; say which and how."""
    index = int(rng.integers(len(names)))
    kind = str(rng.choice(["flat", "noisy"]))
    if kind == "flat":
        data[index] = 0.0
    else:
        data[index] += rng.normal(0.0, BAD_NOISE_UV, data.shape[1])
    return {"channel": names[index], "kind": kind}


def simulate_eeg(
    rng: np.random.Generator,
    plan: SubjectPlan,
    traits: dict,
    site: Site,
    session: str,
    task: str,
    duration_s: float,
    effects: dict[str, float],
) -> tuple[mne.io.RawArray, dict]:
    """One resting recording as a preloaded Raw in volts, and what was planted in it."""
    acq = site.acquisition(effects["site"])["eeg"]
    names, channels = montage_directions(site.montage)
    sfreq, n_times = site.sfreq, int(round(duration_s * site.sfreq))
    sources, params = _source_signals(rng, plan, traits, task, effects, sfreq, n_times)
    directions = np.array(list(source_directions().values()))
    widths = np.array([width for *_, width in SOURCES.values()])
    brain = _gain(channels, directions, widths) @ sources
    brain += _background(rng, channels, traits["aperiodic_exponent"], sfreq, n_times)
    blink, n_blinks = _blinks(rng, task, sfreq, n_times)
    eye = _gain(channels, np.array([EYE_DIRECTION]) / np.linalg.norm(EYE_DIRECTION), EYE_WIDTH)
    noise = acq["noise_factor"]
    # Electrode-to-electrode gain differences (impedance, skull thickness).
    data = rng.lognormal(0.0, CHANNEL_GAIN_SD, (len(names), 1)) * brain + eye @ blink[None, :]
    data += noise * _line_noise(rng, channels, site.line_freq, sfreq, n_times)
    drift = shaped_noise(rng, len(names), n_times, 1 / sfreq, lambda f: 1 / (1 + (f / 0.1) ** 2))
    data += noise * (DRIFT_UV * drift + SENSOR_NOISE_UV * rng.standard_normal(data.shape))
    bad = _plant_bad_channel(rng, data, names) if (session, task) in plan.bad_eeg else None
    ch_names, ch_types = list(names), ["eeg"] * len(names)
    if site.veog:  # below the eye: blinks, a little frontal EEG and sensor noise
        veog = 1.4 * blink + 0.3 * brain[names.index("Fp1")]
        veog += noise * SENSOR_NOISE_UV * rng.standard_normal(n_times)
        data = np.vstack([data, veog])
        ch_names.append("VEOG")
        ch_types.append("eog")
    data *= acq["gain"] * traits["eeg_gain"] * 1e-6
    raw = mne.io.RawArray(data, mne.create_info(ch_names, sfreq, ch_types), verbose=False)
    raw.set_montage(site.montage, verbose=False)
    raw.info["line_freq"] = site.line_freq
    params.update({"bad_channel": bad, "n_blinks": n_blinks})
    return raw, params


def eeg_minutes(task: str) -> int:
    """Minutes into the session at which a task's recording starts."""
    return 60 + 10 * EEG_TASKS.index(task)


def write_eeg(
    raw: mne.io.BaseRaw, root: Path, plan: SubjectPlan, session: str, task: str, site: Site
) -> Path:
    """Write one recording with MNE-BIDS (BrainVision) and complete its sidecar."""
    raw.set_meas_date(acquisition_time(session, eeg_minutes(task)))
    path = mne_bids.BIDSPath(
        subject=plan.label, session=session, task=task, datatype="eeg", root=root
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no events (rest) and the "task-rest*" naming advice
        mne_bids.write_raw_bids(
            raw, path, format="BrainVision", allow_preload=True, overwrite=True, verbose=False
        )
    sidecar = path.copy().update(suffix="eeg", extension=".json").fpath
    meta = json.loads(sidecar.read_text())
    meta.update(
        {
            "TaskDescription": f"resting state, {TASK_DESCRIPTION[task]}",
            "Manufacturer": site.cap_manufacturer,
            "CapManufacturer": site.cap_manufacturer,
            "CapManufacturersModelName": site.montage,
            "EEGPlacementScheme": PLACEMENT[site.montage],
            "EEGReference": "n/a (synthetic reference-free data)",
            "InstitutionName": site.name,
        }
    )
    sidecar.write_text(json.dumps(meta, indent=4) + "\n")
    return path.fpath
