"""Design of the synthetic cohort: sites, diagnoses, planted effects and per-subject latents.

Everything random here is drawn from ``np.random.SeedSequence(seed, spawn_key=key)`` with a key
that names what is drawn (the cohort plan, one subject, one recording), so that a subject's data
depend only on the seed and the subject's index, never on the order or the number of processes.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mcsp.exceptions import McspError

DEFAULT_EFFECTS: dict[str, float] = {
    "fmri_fc": 0.3,
    "eeg_power": 0.5,
    "eeg_fc": 0.3,
    "multimodal": 0.5,
    "site": 0.3,
}

DIAGNOSES = ("control", "ADHD", "ASD", "MDD")
DIAGNOSIS_FRACTIONS = (0.4, 0.2, 0.2, 0.2)
FMRI_ONLY_FRACTION = 0.10
EEG_ONLY_FRACTION = 0.10
TWO_SESSION_FRACTION = 0.15
HIGH_MOTION_FRACTION = 0.15
BAD_CHANNEL_FRACTION = 0.10
EEG_TASKS = ("eyesopen", "eyesclosed")

# Between-subject SD of log theta and log beta source amplitude: the log theta/beta power ratio
# varies with SD 2 x sqrt(2) x 0.1 = 0.28 between subjects (a planted ADHD shift of 2 x eeg_power
# stands out in groups of a few subjects, as in the test cohorts).
THETA_BETA_AMPLITUDE_SD = 0.1

# Networks and bands the effects act on (names as in nilearn's Seitzman-300 coordinates).
FMRI_FC_NETWORKS = ("DefaultMode", "SomatomotorDorsal")
MULTIMODAL_NETWORKS = ("FrontoParietal", "DefaultMode")
BANDS = {"theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0)}

# Every site records resting BOLD runs of the same duration: fmri_volumes x REFERENCE_TR seconds
# (fmri_volumes volumes at a TR of REFERENCE_TR, more at a shorter TR, fewer at a longer one).
REFERENCE_TR = 2.0

# Every recording of session N starts at SESSION_DATE + 91 (N - 1) days (dates are synthetic).
SESSION_DATE = datetime.datetime(2020, 1, 6, 9, 0, tzinfo=datetime.UTC)

# Seeds: spawn keys of the independent random streams.
KEY_PLAN = 0
KEY_SUBJECT = 1
KEY_EEG = 2
KEY_FMRI = 3


class SynthError(McspError, ValueError):
    """Invalid arguments to the synthetic cohort generator, or an unsafe output folder."""


@dataclass(frozen=True)
class Site:
    """Acquisition of one site; ``batch`` holds signed directions scaled by the ``site`` effect."""

    name: str
    montage: str
    cap_manufacturer: str
    sfreq: float
    line_freq: float
    veog: bool
    tr: float
    n_dummy: int
    scanner: str
    bias_axis: str
    # Directions of the batch effects: EEG gain, EEG noise, BOLD mean, BOLD noise, bias field.
    batch: tuple[float, float, float, float, float]

    def fmri_volumes(self, reference_volumes: int) -> int:
        """Volumes of a run lasting ``reference_volumes`` x REFERENCE_TR seconds at this TR."""
        return math.floor(reference_volumes * REFERENCE_TR / self.tr + 0.5)

    def acquisition(self, size: float) -> dict:
        """Per-site acquisition parameters and batch factors for a site effect of ``size``."""
        eeg_gain, eeg_noise, bold_mean, bold_noise, bias = self.batch
        return {
            "eeg": {
                "montage": self.montage,
                "cap_manufacturer": self.cap_manufacturer,
                "sfreq": self.sfreq,
                "line_freq": self.line_freq,
                "veog_channel": self.veog,
                "gain": math.exp(eeg_gain * size),
                "noise_factor": math.exp(eeg_noise * size),
            },
            "fmri": {
                "repetition_time": self.tr,
                "non_steady_state_volumes": self.n_dummy,
                "scanner": self.scanner,
                "mean_intensity": 1000.0 * math.exp(bold_mean * size),
                "noise_factor": math.exp(bold_noise * size),
                "bias_field_slope": bias * size,
                "bias_field_axis": self.bias_axis,
            },
        }


SITES = (
    Site(
        name="siteA",
        montage="biosemi64",
        cap_manufacturer="BioSemi",
        sfreq=512.0,
        line_freq=50.0,
        veog=True,
        tr=2.0,
        n_dummy=0,
        scanner="Siemens",
        bias_axis="x",
        batch=(0, 0, 0, 0, 0),
    ),
    Site(
        name="siteB",
        montage="biosemi32",
        cap_manufacturer="BioSemi",
        sfreq=500.0,
        line_freq=60.0,
        veog=True,
        tr=0.8,
        n_dummy=4,
        scanner="GE",
        bias_axis="y",
        batch=(1, 1, 1, -1, 1),
    ),
    Site(
        name="siteC",
        montage="GSN-HydroCel-129",
        cap_manufacturer="EGI",
        sfreq=250.0,
        line_freq=60.0,
        veog=False,
        tr=2.5,
        n_dummy=2,
        scanner="Philips",
        bias_axis="z",
        batch=(-1, 2, -1, 1, 1),
    ),
)
SITE_BY_NAME = {site.name: site for site in SITES}


@dataclass(frozen=True)
class SubjectPlan:
    """Who a subject is and what was recorded; ``sign_*`` drive the multimodal effect."""

    index: int
    label: str
    site: str
    diagnosis: str
    age: int
    sex: str
    sessions: tuple[str, ...]
    has_eeg: bool
    has_fmri: bool
    sign_fmri: int
    sign_eeg: int
    bad_eeg: tuple[tuple[str, str], ...] = ()  # (session, task) of recordings with a bad channel


def acquisition_time(session: str, minutes: int) -> datetime.datetime:
    """Fixed, synthetic start time of a recording ``minutes`` into session ``session``."""
    return SESSION_DATE + datetime.timedelta(days=91 * (int(session) - 1), minutes=minutes)


def rng_for(seed: int, *key: int) -> np.random.Generator:
    """Independent random stream for ``key`` (e.g. subject index, session, task)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def check_effects(effects: Mapping[str, float] | None) -> dict[str, float]:
    """Defaults completed by ``effects``; unknown keys and negative sizes are refused."""
    merged = dict(DEFAULT_EFFECTS)
    for key, value in (effects or {}).items():
        if key not in DEFAULT_EFFECTS:
            raise SynthError(
                f"unknown effect {key!r}: valid effects are {', '.join(DEFAULT_EFFECTS)}"
            )
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise SynthError(f"effect {key!r} must be a finite number >= 0, got {value!r}")
        merged[key] = float(value)
    return merged


def _allocate(n: int, fractions: tuple[float, ...]) -> list[int]:
    """Split ``n`` into counts proportional to ``fractions`` (largest remainder)."""
    raw = [n * f for f in fractions]
    counts = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _n_special(n: int, fraction: float) -> int:
    """How many subjects get a special status; at least one from 10 subjects on."""
    count = round(n * fraction)
    return max(count, 1) if n >= 10 else count


def _balanced_signs(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` signs, half +1 and half -1 (one extra at random when ``n`` is odd), shuffled."""
    return rng.permutation(np.resize([1, -1] if rng.random() < 0.5 else [-1, 1], n))


def _multimodal_signs(
    rng: np.random.Generator, diagnoses: np.ndarray, both: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Signs s_f, s_e: s_e = s_f in MDD, independent elsewhere, balanced by design.

    Within each diagnosis, separately for subjects with both modalities and the others, half
    have s_f = +1 and (outside MDD) half have s_e = s_f, so that the marginals are the same in
    every group and the product s_f x s_e averages 0 outside MDD.
    """
    sign_fmri = np.zeros(len(diagnoses), dtype=int)
    sign_eeg = np.zeros(len(diagnoses), dtype=int)
    for k, diagnosis in enumerate(DIAGNOSES):
        for stratum in (True, False):
            members = np.flatnonzero((diagnoses == k) & (both == stratum))
            sign_fmri[members] = _balanced_signs(rng, len(members))
            concordance = 1 if diagnosis == "MDD" else _balanced_signs(rng, len(members))
            sign_eeg[members] = sign_fmri[members] * concordance
    return sign_fmri, sign_eeg


def _bad_recordings(
    rng: np.random.Generator, sessions: list[tuple[str, ...]], fmri_only: set[int]
) -> dict[int, list[tuple[str, str]]]:
    """~BAD_CHANNEL_FRACTION of the EEG recordings, by subject (at least one from 10 on)."""
    recordings = [
        (i, session, task)
        for i, subject_sessions in enumerate(sessions)
        if i not in fmri_only
        for session in subject_sessions
        for task in EEG_TASKS
    ]
    chosen: dict[int, list[tuple[str, str]]] = {}
    n_bad = _n_special(len(recordings), BAD_CHANNEL_FRACTION)
    for k in sorted(rng.permutation(len(recordings))[:n_bad]):
        i, session, task = recordings[k]
        chosen.setdefault(i, []).append((session, task))
    return chosen


def plan_cohort(n_subjects: int, seed: int) -> list[SubjectPlan]:
    """Labels, sites, sessions and modalities of every subject, balanced and deterministic."""
    rng = rng_for(seed, KEY_PLAN)
    counts = _allocate(n_subjects, DIAGNOSIS_FRACTIONS)
    diagnoses = rng.permutation(np.repeat(np.arange(len(DIAGNOSES)), counts))
    # Sites round-robin within each diagnosis, so that site and diagnosis are not confounded.
    order = np.lexsort((rng.permutation(n_subjects), diagnoses))
    sites = np.empty(n_subjects, dtype=int)
    sites[order] = (np.arange(n_subjects) + rng.integers(len(SITES))) % len(SITES)

    perm = rng.permutation(n_subjects)
    n_fmri_only = _n_special(n_subjects, FMRI_ONLY_FRACTION)
    n_eeg_only = _n_special(n_subjects, EEG_ONLY_FRACTION)
    fmri_only = set(perm[:n_fmri_only].tolist())
    eeg_only = set(perm[n_fmri_only : n_fmri_only + n_eeg_only].tolist())
    n_two = _n_special(n_subjects, TWO_SESSION_FRACTION)
    two_sessions = set(rng.permutation(n_subjects)[:n_two].tolist())

    ages = rng.integers(12, 51, size=n_subjects)
    sexes = rng.choice(["M", "F"], size=n_subjects)
    both = np.array([i not in fmri_only | eeg_only for i in range(n_subjects)])
    sign_fmri, sign_eeg = _multimodal_signs(rng, diagnoses, both)
    sessions = [("1", "2") if i in two_sessions else ("1",) for i in range(n_subjects)]
    bad_eeg = _bad_recordings(rng, sessions, fmri_only)
    width = max(3, len(str(n_subjects)))
    plans = []
    for i in range(n_subjects):
        diagnosis = DIAGNOSES[diagnoses[i]]
        plans.append(
            SubjectPlan(
                index=i,
                label=f"{i + 1:0{width}d}",
                site=SITES[sites[i]].name,
                diagnosis=diagnosis,
                age=int(ages[i]),
                sex=str(sexes[i]),
                sessions=sessions[i],
                has_eeg=i not in fmri_only,
                has_fmri=i not in eeg_only,
                sign_fmri=int(sign_fmri[i]),
                sign_eeg=int(sign_eeg[i]),
                bad_eeg=tuple(sorted(bad_eeg.get(i, ()))),
            )
        )
    return plans


def subject_traits(seed: int, index: int) -> dict[str, float | bool]:
    """Stable individual differences of one subject (the same in every session)."""
    rng = rng_for(seed, KEY_SUBJECT, index)
    return {
        "alpha_peak_hz": float(np.clip(rng.normal(10.0, 0.5), 9.0, 11.5)),
        "alpha_amplitude": float(rng.lognormal(0.0, 0.15)),
        "theta_amplitude": float(rng.lognormal(0.0, THETA_BETA_AMPLITUDE_SD)),
        "beta_amplitude": float(rng.lognormal(0.0, THETA_BETA_AMPLITUDE_SD)),
        "aperiodic_exponent": float(np.clip(rng.normal(1.6, 0.15), 1.0, 2.2)),
        "frontoparietal_alpha_coupling": float(np.clip(rng.normal(0.2, 0.05), 0.0, 0.5)),
        "frontal_alpha_asymmetry": float(rng.normal(0.0, 0.1)),
        "eeg_gain": float(rng.lognormal(0.0, 0.1)),
        "bold_amplitude": float(rng.lognormal(0.0, 0.1)),
        "bold_noise": float(rng.lognormal(0.0, 0.1)),
        "coupling_jitter_seed": int(rng.integers(2**31)),
        "high_motion": bool(rng.random() < HIGH_MOTION_FRACTION),
    }


def effect_definitions(effects: Mapping[str, float]) -> dict[str, dict]:
    """What each planted effect is, where it lives and how to recover it."""
    theta, alpha, beta = BANDS["theta"], BANDS["alpha"], BANDS["beta"]
    net_a, net_b = FMRI_FC_NETWORKS
    mm_f, mm_d = MULTIMODAL_NETWORKS
    return {
        "fmri_fc": {
            "size": effects["fmri_fc"],
            "label": "ASD",
            "reference": "control",
            "modality": "fmri",
            "networks": list(FMRI_FC_NETWORKS),
            "direction": "decrease",
            "definition": (
                f"latent correlation between the {net_a} and {net_b} network signals is lowered "
                "by `size` in ASD (hypo-connectivity); the ROI-level correlation between their "
                "ROIs drops by about size x within_network_loading"
            ),
            "recover": (
                f"mean Fisher-z correlation between ROI time series of {net_a} and {net_b} "
                f"(Seitzman coordinates in fmri.rois), ASD < control"
            ),
        },
        "eeg_power": {
            "size": effects["eeg_power"],
            "label": "ADHD",
            "reference": "control",
            "modality": "eeg",
            "bands": {"theta": list(theta), "beta": list(beta)},
            "regions": {"theta": ["frontal_midline"], "beta": ["central_left", "central_right"]},
            "direction": "theta up, beta down (theta/beta ratio up)",
            "definition": (
                "frontal-midline theta source power x exp(+size), central beta source power "
                "x exp(-size) in ADHD: the source-level log theta/beta ratio rises by 2 x size"
            ),
            "recover": (
                f"log theta {theta} Hz power over frontal_midline channels minus log beta {beta} "
                "Hz power over central channels (Welch, both tasks): ADHD > control; the "
                "whole-head average shows it too, diluted"
            ),
        },
        "eeg_fc": {
            "size": effects["eeg_fc"],
            "label": "ADHD",
            "reference": "control",
            "modality": "eeg",
            "bands": {"alpha": list(alpha)},
            "regions": ["frontal_left", "frontal_right", "parietal"],
            "direction": "increase",
            "definition": (
                "each frontal alpha source is sqrt(1 - c^2) x own + c x parietal alpha delayed by "
                "25 ms (about 90 degrees at 10 Hz), c = frontoparietal_alpha_coupling (~0.2) + "
                "size in ADHD"
            ),
            "recover": (
                f"lagged alpha {alpha} Hz coupling between frontal and parietal channels: "
                "|imaginary coherency| or wPLI (zero-lag coherence is dominated by volume "
                "conduction): ADHD > control"
            ),
        },
        "multimodal": {
            "size": effects["multimodal"],
            "label": "MDD",
            "reference": "control",
            "modality": "fmri+eeg",
            "networks": list(MULTIMODAL_NETWORKS),
            "bands": {"alpha": list(alpha)},
            "regions": ["frontal_left", "frontal_right"],
            "direction": "sign_fmri == sign_eeg in MDD",
            "definition": (
                f"every subject has signs s_f, s_e in {{-1, +1}}: the {mm_f}-{mm_d} latent "
                "correlation is shifted by s_f x size and the frontal alpha asymmetry "
                "ln(P_alpha right / P_alpha left) of the frontal sources by s_e x size. In every "
                "group half the subjects have s_f = +1; MDD have s_e = s_f, the other groups "
                "s_e = s_f for exactly half of their members (independent signs). Each "
                "modality's marginal distribution is the same in every group; only the product "
                "s_f x s_e differs (mean 1 in MDD, 0 elsewhere)"
            ),
            "recover": (
                f"z-score the fMRI feature ({mm_f}-{mm_d} FC) and the EEG feature (frontal alpha "
                "asymmetry: log alpha power over frontal_right minus frontal_left channels, "
                "average reference) within site; their product is higher in MDD than in "
                "controls, while neither feature alone differs"
            ),
        },
        "site": {
            "size": effects["site"],
            "label": "site",
            "modality": "fmri+eeg",
            "definition": (
                "per-site factors exp(direction x size) on EEG gain and noise, BOLD mean intensity "
                "and noise, and a linear BOLD bias field of slope direction x size along one axis "
                "(see sites); montage, sampling rate, mains frequency and TR always differ"
            ),
            "recover": "site is predictable from raw intensity/gain statistics; harmonise",
        },
    }


def shaped_noise(
    rng: np.random.Generator, n_series: int, n_times: int, step: float, amplitude
) -> np.ndarray:
    """Gaussian series with spectral amplitude ``amplitude(freqs)``, zero mean, unit variance.

    ``step`` is the sampling interval in seconds; the series are circular (synthesised by an
    inverse real FFT), float64, shape ``(n_series, n_times)``.
    """
    freqs = np.fft.rfftfreq(n_times, step)
    shape = np.asarray(amplitude(freqs), dtype=float)
    shape[0] = 0.0
    spectrum = rng.standard_normal((n_series, freqs.size)) + 1j * rng.standard_normal(
        (n_series, freqs.size)
    )
    series = np.fft.irfft(spectrum * shape, n=n_times, axis=-1)
    series -= series.mean(axis=-1, keepdims=True)
    std = series.std(axis=-1, keepdims=True)
    return series / np.where(std > 0, std, 1.0)
