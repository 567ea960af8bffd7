"""A synthetic cohort written directly as the workflow's contract files (no BIDS, no cleaning).

``write_contract_cohort`` writes what the preprocessing branches would leave in
``results/<cohort>/``: ROI time series (Seitzman-300 labels, JSON sidecar with RepetitionTime),
clean EEG ``.fif`` files (the 19 channels of ``mcsp.eeg.CHANNEL_SETS["1020_19"]`` at 256 Hz,
average reference), ``inventory.tsv``, ``fmri_qc.tsv``, ``eeg_qc.tsv``, ``participants.tsv``
and ``ground_truth.json``. The dataset store reads them as it reads any cohort, so a cohort of
hundreds of subjects costs seconds instead of hours of EEG cleaning and fMRI parcellation.

The design is built so that the synthetic checks can discriminate (issue 14):

- Labels are independent binary diagnoses (ASD, ADHD, MDD: each subject may have any
  combination), each held by exactly half of the subjects in a shuffled 2 x 2 x 2 design, so
  every task uses every subject with balanced classes (the most power per subject).
- Every subject has latent factors, standard normal before the diagnoses shift them. fMRI
  factors set the coupling (Fisher z) of a pair of networks' signals; EEG factors set band
  amplitudes of a few cortical sources. Five factors per modality, each expressed coherently
  over hundreds of ROI pairs or several channels and frequency bins, make most of the
  between-subject variance, far above the window-to-window noise. Self-supervised pretraining
  (contrastive within a modality: windows of one subject look alike, subjects differ; and
  cross-modal consistency on the two factors both modalities share) therefore has every
  factor in its embedding without labels, and a head needs few labels to pick the one a
  diagnosis shifts; a network trained from scratch on 20% of the labels must find that
  direction among ~45,000 FC edges or 19 x 89 spectral bins with a few dozen subjects.
- ASD (fMRI only) lowers the DefaultMode-SomatomotorDorsal coupling by ``asd`` SDs; ADHD (EEG
  only) raises frontal-midline theta and lowers central beta (theta/beta factor) by ``adhd``
  SDs. Neither shows in the other modality.
- MDD (multimodal) has two equally frequent presentations: half of the MDD subjects have the
  FrontoParietal-CinguloOpercular coupling lowered by ``mdd`` SDs (fMRI presentation), the
  other half the right-minus-left frontal alpha amplitude raised by ``mdd`` SDs (EEG
  presentation). Each modality alone sees half of the cases (AUROC about 0.75 at most), the
  sum of the two z-scored features sees all of them (about 0.95): the fused model has a
  margin of about 0.2 AUROC over either modality.
- Two shared factors (Visual-Auditory coupling with posterior alpha amplitude;
  DorsalAttention-Salience coupling with the alpha peak frequency) are what the cross-modal
  pretraining losses can align; they carry no label. One nuisance factor per modality
  (VentralAttention-Reward coupling and the fMRI spectrum's corner frequency; the EEG 1/f
  exponent) adds label-free variance. Sites and sex carry no effect.

Everything random comes from ``np.random.SeedSequence(seed, spawn_key=key)`` keyed by what is
drawn (plan, subject, recording), so the same settings give identical files.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pandas as pd

from mcsp import __version__
from mcsp.bids import HEAD_COLUMNS, TAIL_COLUMNS, Inventory
from mcsp.eeg import CHANNEL_SETS
from mcsp.eeg import QC_COLUMNS as EEG_QC_COLUMNS
from mcsp.fmri import QC_COLUMNS as FMRI_QC_COLUMNS
from mcsp.parallel import process_pool
from mcsp.synth._design import SynthError, rng_for, shaped_noise
from mcsp.synth._eeg import _fibonacci_directions, _gain, montage_directions

log = logging.getLogger(__name__)

GENERATOR = "mcsp.synth.contract"
ATLAS = "seitzman300"
CHANNEL_SET = "1020_19"
EEG_SFREQ = 256.0
SITES = ("siteA", "siteB", "siteC")
DIAGNOSES = ("ASD", "ADHD", "MDD")

# Effect sizes: shifts of the label's latent factor in between-subject SDs.
CONTRACT_EFFECTS: dict[str, float] = {"asd": 2.5, "adhd": 2.5, "mdd": 3.5}

# Factors (name -> modality); each is N(0, 1) between subjects before the diagnoses shift it.
FACTORS = {
    "fmri_asd": "fmri",
    "fmri_mdd": "fmri",
    "fmri_other": "fmri",
    "fmri_spectrum": "fmri",
    "eeg_adhd": "eeg",
    "eeg_mdd": "eeg",
    "eeg_other": "eeg",
    "eeg_gain": "eeg",
    "shared_arousal": "fmri+eeg",
    "shared_tempo": "fmri+eeg",
}
# fMRI: factor -> (network a, network b) whose signals it couples; every network in one pair.
COUPLINGS = {
    "fmri_asd": ("SomatomotorDorsal", "Visual"),
    "fmri_mdd": ("FrontoParietal", "CinguloOpercular"),
    "shared_arousal": ("DefaultMode", "Auditory"),
    "shared_tempo": ("DorsalAttention", "Salience"),
    "fmri_other": ("VentralAttention", "Reward"),
}
COUPLING_MEAN_Z = 0.2  # network-signal coupling (Fisher z) of a factor at 0
COUPLING_SD_Z = 0.25  # ... and its change per factor SD
LOADING_RANGE = (0.45, 0.8)  # ROI loading on its network signal (unassigned ROIs: 0)
CORNER_HZ = 0.08  # corner of the BOLD spectrum (1 / sqrt(1 + (f / corner)^2) amplitude)
CORNER_LOG_SD = 0.25  # ln corner per fmri_spectrum SD

# EEG: sources under channels of the 10-20 system (channel, band, Gaussian field width).
SOURCES = {
    "occipital_left": ("O1", "alpha", 0.55),
    "occipital_right": ("O2", "alpha", 0.55),
    "parietal": ("Pz", "alpha", 0.55),
    "frontal_left": ("F3", "alpha", 0.6),
    "frontal_right": ("F4", "alpha", 0.6),
    "frontal_midline": ("Fz", "theta", 0.6),
    "central_left": ("C3", "beta", 0.6),
    "central_right": ("C4", "beta", 0.6),
}
AMPLITUDE_UV = {  # source amplitude (µV at the nearest electrode) per task
    "posterior_alpha": {"eyesopen": 5.0, "eyesclosed": 15.0},
    "frontal_alpha": {"eyesopen": 8.0, "eyesclosed": 10.0},
    "theta": {"eyesopen": 7.0, "eyesclosed": 7.0},
    "beta": {"eyesopen": 5.0, "eyesclosed": 5.0},
}
THETA_BETA_LOG_SD = 0.3  # ln(theta amplitude / beta amplitude) per eeg_adhd SD
ASYMMETRY_LOG_SD = 0.5  # ln(right / left frontal alpha amplitude) per eeg_mdd SD
AROUSAL_LOG_SD = 0.3  # ln posterior alpha amplitude per shared_arousal SD
ALPHA_PEAK_HZ, ALPHA_PEAK_SD = 10.0, 0.5  # alpha peak frequency and its change per shared_tempo SD
EXPONENT, EXPONENT_SD = 1.6, 0.15  # 1/f exponent of the background and its change per eeg_other SD
BACKGROUND_UV = 10.0  # median channel SD of the 1/f background
SENSOR_NOISE_UV = 1.0
GAIN_LOG_SD = 0.1  # subject's overall EEG gain (ln)
BANDS = {"theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0)}

KEY_CONTRACT = 10  # spawn keys: (KEY_CONTRACT, 0) plan, (KEY_CONTRACT, 1, i) subject i, ...
KEY_PLAN, KEY_FACTORS, KEY_FMRI, KEY_EEG = 0, 1, 2, 3


@dataclass(frozen=True)
class ContractSettings:
    """What the generator draws: subjects, seed, recording sizes, tasks and effect sizes."""

    subjects: int = 240
    seed: int = 0
    fmri_volumes: int = 200
    repetition_time: float = 2.0
    eeg_duration_s: float = 60.0
    fmri_tasks: tuple[str, ...] = ("rest",)
    eeg_tasks: tuple[str, ...] = ("eyesopen", "eyesclosed")
    effects: dict[str, float] = field(default_factory=lambda: dict(CONTRACT_EFFECTS))


SIZE_KEYS = ("subjects", "seed", "fmri_volumes", "repetition_time", "eeg_duration_s")


@dataclass(frozen=True)
class ContractSubject:
    """One subject: labels (0/1), site, sex, age, MDD presentation and latent factors."""

    index: int
    label: str
    site: str
    sex: str
    age: int
    diagnoses: dict[str, int]
    mdd_presentation: str  # "fmri", "eeg" or "" (no MDD)
    factors: dict[str, float]


def contract_settings(spec: Mapping[str, Any] | None, cohort: Mapping[str, Any] | None = None):
    """Settings from a cohort file's ``synthetic`` block (and its task lists), validated.

    Raises:
        SynthError: a value out of range or an unknown effect.
    """
    spec = dict(spec or {})
    effects = dict(CONTRACT_EFFECTS)
    for key, value in (spec.pop("effects", None) or {}).items():
        if key not in CONTRACT_EFFECTS:
            raise SynthError(f"unknown effect {key!r}: valid effects are {', '.join(effects)}")
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise SynthError(f"effect {key!r} must be a finite number >= 0, got {value!r}")
        effects[key] = float(value)
    fmri_tasks = tuple((cohort or {}).get("fmri", {}).get("tasks", ("rest",)))
    eeg_tasks = tuple((cohort or {}).get("eeg", {}).get("tasks", ("eyesopen", "eyesclosed")))
    unknown = [t for t in eeg_tasks if t not in AMPLITUDE_UV["theta"]]
    if unknown:
        raise SynthError(f"EEG tasks {unknown}: the synthetic EEG has eyesopen and eyesclosed")
    unknown_keys = sorted(set(spec) - set(SIZE_KEYS))
    settings = ContractSettings(
        **{k: v for k, v in spec.items() if k in SIZE_KEYS},
        fmri_tasks=fmri_tasks,
        eeg_tasks=eeg_tasks,
        effects=effects,
    )
    checks = [
        (not unknown_keys, f"unknown keys {unknown_keys}"),
        (settings.subjects >= 8, f"subjects must be >= 8, got {settings.subjects}"),
        (settings.seed >= 0, f"seed must be >= 0, got {settings.seed}"),
        (settings.fmri_volumes >= 20, f"fmri_volumes must be >= 20, got {settings.fmri_volumes}"),
        (settings.repetition_time > 0, "repetition_time must be > 0"),
        (settings.eeg_duration_s >= 2, "eeg_duration_s must be >= 2"),
    ]
    for ok, message in checks:
        if not ok:
            raise SynthError(f"synthetic cohort: {message}")
    return settings


def _balanced(rng: np.random.Generator, values: Sequence[Any], n: int) -> np.ndarray:
    """``n`` values cycling through ``values`` (counts differ by at most one), shuffled."""
    return rng.permutation(np.resize(np.asarray(values, dtype=object), n))


def plan_subjects(settings: ContractSettings) -> list[ContractSubject]:
    """Labels, sites and latent factors of every subject (deterministic in the seed).

    The eight ASD x ADHD x MDD cells hold N/8 subjects each (± 1); within each cell the MDD
    presentations alternate and sites go round-robin, so labels, presentations and sites are
    (nearly) orthogonal.
    """
    n, seed, effects = settings.subjects, settings.seed, settings.effects
    rng = rng_for(seed, KEY_CONTRACT, KEY_PLAN)
    cells = _balanced(rng, range(8), n).astype(int)
    presentation = np.array([""] * n, dtype=object)
    sites = np.empty(n, dtype=object)
    for cell in range(8):
        members = np.flatnonzero(cells == cell)
        sites[members] = _balanced(rng, SITES, len(members))
        if cell & 4:
            presentation[members] = _balanced(rng, ("fmri", "eeg"), len(members))
    sexes = _balanced(rng, ("M", "F"), n)
    ages = rng.integers(18, 61, size=n)
    width = max(3, len(str(n)))
    subjects = []
    for i in range(n):
        diagnoses = {name: int(cells[i] >> k & 1) for k, name in enumerate(DIAGNOSES)}
        draws = rng_for(seed, KEY_CONTRACT, KEY_FACTORS, i).standard_normal(len(FACTORS))
        factors = dict(zip(FACTORS, draws.tolist(), strict=True))
        factors["fmri_asd"] -= effects["asd"] * diagnoses["ASD"]
        factors["eeg_adhd"] += effects["adhd"] * diagnoses["ADHD"]
        if presentation[i] == "fmri":
            factors["fmri_mdd"] -= effects["mdd"]
        elif presentation[i] == "eeg":
            factors["eeg_mdd"] += effects["mdd"]
        subjects.append(
            ContractSubject(
                index=i,
                label=f"{i + 1:0{width}d}",
                site=str(sites[i]),
                sex=str(sexes[i]),
                age=int(ages[i]),
                diagnoses=diagnoses,
                mdd_presentation=str(presentation[i]),
                factors=factors,
            )
        )
    return subjects


@lru_cache
def _atlas() -> tuple[list[str], list[str]]:
    from mcsp.atlases import get_atlas

    atlas = get_atlas(ATLAS)
    return list(atlas.labels), list(atlas.networks)


def roi_loadings(seed: int) -> np.ndarray:
    """Each ROI's loading on its network's signal (the same for every subject)."""
    _, networks = _atlas()
    rng = rng_for(seed, KEY_CONTRACT, KEY_PLAN, 1)
    loadings = rng.uniform(*LOADING_RANGE, size=len(networks))
    return np.where(np.array(networks) == "unassigned", 0.0, loadings)


def coupling(subject: ContractSubject, factor: str) -> float:
    """Correlation between the two network signals a factor couples."""
    return math.tanh(COUPLING_MEAN_Z + COUPLING_SD_Z * subject.factors[factor])


def simulate_fmri(
    subject: ContractSubject, settings: ContractSettings, task: str = "rest"
) -> np.ndarray:
    """Cleaned ROI time series (volumes x 300 ROIs, z-scored per ROI) of one run.

    Each network has one signal (pink-ish BOLD spectrum); the factors of ``COUPLINGS`` mix the
    second network's signal with the first's, and each ROI is its network's signal times its
    loading plus independent noise of the same spectrum.
    """
    _, networks = _atlas()
    names = sorted(set(networks) - {"unassigned"})
    key = settings.fmri_tasks.index(task) if task in settings.fmri_tasks else 0
    rng = rng_for(settings.seed, KEY_CONTRACT, KEY_FMRI, subject.index, key)
    corner = CORNER_HZ * math.exp(CORNER_LOG_SD * subject.factors["fmri_spectrum"])

    def spectrum(freqs: np.ndarray) -> np.ndarray:
        return 1.0 / np.sqrt(1.0 + (freqs / corner) ** 2)

    volumes, tr = settings.fmri_volumes, settings.repetition_time
    signals = dict(zip(names, shaped_noise(rng, len(names), volumes, tr, spectrum), strict=True))
    for factor, (first, second) in COUPLINGS.items():
        c = coupling(subject, factor)
        signals[second] = c * signals[first] + math.sqrt(1 - c**2) * signals[second]
    noise = shaped_noise(rng, len(networks), volumes, tr, spectrum)
    loadings = roi_loadings(settings.seed)
    shared = np.stack([signals.get(net, np.zeros(volumes)) for net in networks])
    series = loadings[:, None] * shared + np.sqrt(1 - loadings[:, None] ** 2) * noise
    series = (series - series.mean(axis=1, keepdims=True)) / series.std(axis=1, keepdims=True)
    return series.T


@lru_cache
def _geometry() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit directions of the 19 channels, of the named sources, and the background gain."""
    names, directions = montage_directions("biosemi64")
    channels = np.array([directions[names.index(c)] for c in CHANNEL_SETS[CHANNEL_SET]])
    sources = np.array([directions[names.index(ch)] for ch, *_ in SOURCES.values()])
    gain = _gain(channels, _fibonacci_directions(64), 0.5)
    return channels, sources, gain * BACKGROUND_UV / np.sqrt(np.median((gain**2).sum(axis=1)))


def _band(peak: float, sd: float):
    return lambda f: np.exp(-0.5 * ((f - peak) / sd) ** 2)


def simulate_eeg(subject: ContractSubject, settings: ContractSettings, task: str) -> np.ndarray:
    """Clean EEG (19 channels x samples at 256 Hz, volts, average reference) of one recording."""
    f = subject.factors
    key = settings.eeg_tasks.index(task)
    rng = rng_for(settings.seed, KEY_CONTRACT, KEY_EEG, subject.index, key)
    n_times, step = int(round(settings.eeg_duration_s * EEG_SFREQ)), 1 / EEG_SFREQ
    peak = float(np.clip(ALPHA_PEAK_HZ + ALPHA_PEAK_SD * f["shared_tempo"], 8.0, 12.0))
    alpha = shaped_noise(rng, 5, n_times, step, _band(peak, 0.6))
    theta = shaped_noise(rng, 1, n_times, step, _band(6.0, 1.0))
    beta = shaped_noise(rng, 2, n_times, step, _band(20.0, 4.0))
    posterior = AMPLITUDE_UV["posterior_alpha"][task] * math.exp(
        AROUSAL_LOG_SD * f["shared_arousal"]
    )
    frontal = AMPLITUDE_UV["frontal_alpha"][task]
    asymmetry = ASYMMETRY_LOG_SD * f["eeg_mdd"] / 2
    theta_beta = THETA_BETA_LOG_SD * f["eeg_adhd"] / 2
    amplitudes = np.array(
        [
            posterior,
            posterior,
            0.7 * posterior,
            frontal * math.exp(-asymmetry),
            frontal * math.exp(asymmetry),
            AMPLITUDE_UV["theta"][task] * math.exp(theta_beta),
            AMPLITUDE_UV["beta"][task] * math.exp(-theta_beta),
            AMPLITUDE_UV["beta"][task] * math.exp(-theta_beta),
        ]
    )
    sources = amplitudes[:, None] * np.vstack([alpha, theta, beta])
    channels, directions, background_gain = _geometry()
    widths = np.array([width for *_, width in SOURCES.values()])
    exponent = EXPONENT + EXPONENT_SD * f["eeg_other"]

    def pink(freqs: np.ndarray) -> np.ndarray:
        return np.maximum(freqs, 0.5) ** (-exponent / 2) * (freqs > 0.3)

    background = shaped_noise(rng, background_gain.shape[1], n_times, step, pink)
    data = _gain(channels, directions, widths) @ sources + background_gain @ background
    data += SENSOR_NOISE_UV * rng.standard_normal(data.shape)
    data -= data.mean(axis=0, keepdims=True)  # average reference
    return data * math.exp(GAIN_LOG_SD * f["eeg_gain"]) * 1e-6


def effect_definitions(effects: Mapping[str, float]) -> dict[str, dict]:
    """Each planted effect: label, modality, what it changes, and a machine-readable recipe.

    ``recover`` lists features computed per subject from the store (means over samples):
    ``network_fc`` = mean Fisher-z FC between the ROIs of two networks (fMRI spatial domain);
    ``log_power`` = mean log10 power over ``plus`` channels and band minus that over ``minus``
    channels and band (EEG frequency domain). ``sign`` orients each feature so that higher
    means the label; ``combine`` = ``sum_site_z``: the sum of the signed features z-scored
    within site.
    """
    theta, alpha, beta = (list(BANDS[b]) for b in ("theta", "alpha", "beta"))
    asd_a, asd_b = COUPLINGS["fmri_asd"]
    mdd_a, mdd_b = COUPLINGS["fmri_mdd"]
    mdd_fc = {
        "name": "mdd_fc",
        "modality": "fmri",
        "kind": "network_fc",
        "networks": [mdd_a, mdd_b],
        "sign": -1,
    }
    mdd_eeg = {
        "name": "mdd_asymmetry",
        "modality": "eeg",
        "kind": "log_power",
        "plus": {"channels": ["F4"], "band": alpha},
        "minus": {"channels": ["F3"], "band": alpha},
        "sign": 1,
    }
    return {
        "fmri_fc": {
            "size": effects["asd"],
            "label": "ASD",
            "modality": "fmri",
            "factor": "fmri_asd",
            "networks": [asd_a, asd_b],
            "direction": "decrease",
            "definition": (
                f"the {asd_a}-{asd_b} signal coupling (Fisher z {COUPLING_MEAN_Z} + "
                f"{COUPLING_SD_Z} x factor) has its factor lowered by `size` SDs in ASD"
            ),
            "recover": {
                "features": [
                    {
                        "name": "asd_fc",
                        "modality": "fmri",
                        "kind": "network_fc",
                        "networks": [asd_a, asd_b],
                        "sign": -1,
                    }
                ],
                "combine": "single",
            },
        },
        "eeg_power": {
            "size": effects["adhd"],
            "label": "ADHD",
            "modality": "eeg",
            "factor": "eeg_adhd",
            "bands": {"theta": theta, "beta": beta},
            "direction": "theta up, beta down",
            "definition": (
                f"ln(frontal-midline theta / central beta source amplitude) = "
                f"{THETA_BETA_LOG_SD} x factor; the factor is raised by `size` SDs in ADHD"
            ),
            "recover": {
                "features": [
                    {
                        "name": "adhd_theta_beta",
                        "modality": "eeg",
                        "kind": "log_power",
                        "plus": {"channels": ["Fz"], "band": theta},
                        "minus": {"channels": ["C3", "C4"], "band": beta},
                        "sign": 1,
                    }
                ],
                "combine": "single",
            },
        },
        "multimodal": {
            "size": effects["mdd"],
            "label": "MDD",
            "modality": "fmri+eeg",
            "factors": ["fmri_mdd", "eeg_mdd"],
            "networks": [mdd_a, mdd_b],
            "bands": {"alpha": alpha},
            "direction": "fMRI presentation: coupling down; EEG presentation: F4 > F3 alpha",
            "definition": (
                "half of the MDD subjects (fMRI presentation) have the "
                f"{mdd_a}-{mdd_b} coupling factor lowered by `size` SDs, the other half (EEG "
                f"presentation) the frontal alpha asymmetry factor (ln right/left amplitude = "
                f"{ASYMMETRY_LOG_SD} x factor) raised by `size` SDs: each modality alone sees "
                "half of the cases, the sum of both features all of them"
            ),
            "recover": {"features": [mdd_fc, mdd_eeg], "combine": "sum_site_z"},
        },
        "site": {
            "size": 0.0,
            "label": "site",
            "modality": "fmri+eeg",
            "definition": "no site effect: sites only stratify the folds",
        },
    }


def _write_tsv(table: pd.DataFrame, path: Path) -> None:
    table.to_csv(path, sep="\t", index=False, na_rep="n/a", lineterminator="\n")


def _simulate_subject(job: tuple[ContractSubject, ContractSettings, str, Path]) -> dict:
    """Write one subject's time series and EEG files; return its QC rows."""
    subject, settings, cohort, out = job
    labels, _ = _atlas()
    sub = f"sub-{subject.label}"
    rows: dict[str, list[dict]] = {"fmri": [], "eeg": []}
    base = {"cohort": cohort, "subject": subject.label, "session": "", "run": ""}
    for task in settings.fmri_tasks:
        folder = out / "fmri" / sub / "func"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{sub}_task-{task}_atlas-{ATLAS}_timeseries.tsv"
        series = simulate_fmri(subject, settings, task)
        np.savetxt(path, series, fmt="%.5g", delimiter="\t", header="\t".join(labels),
                   comments="")  # fmt: skip
        sidecar = {
            "RepetitionTime": settings.repetition_time,
            "Atlas": ATLAS,
            "Synthetic": GENERATOR,
            "QC": {"n_volumes": len(series), "n_kept": len(series), "n_censored": 0},
        }
        path.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
        rows["fmri"].append(
            {
                **base,
                "task": task,
                "atlas": ATLAS,
                "timeseries": str(path),
                "n_volumes": len(series),
                "n_non_steady_state": 0,
                "n_censored": 0,
                "pct_censored": 0.0,
                "n_kept": len(series),
                "mean_fd": 0.0,
                "zero_variance_rois": "",
                "empty_rois": "",
                "status": "ok",
                "reason": "",
            }
        )
    info = mne.create_info(CHANNEL_SETS[CHANNEL_SET], EEG_SFREQ, "eeg")
    for k, task in enumerate(settings.eeg_tasks):
        folder = out / "eeg" / sub / "eeg"
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{sub}_task-{task}"
        raw = mne.io.RawArray(simulate_eeg(subject, settings, task), info, verbose="error")
        raw.set_meas_date(1_577_836_800 + 3600 * subject.index + 600 * k)  # fixed: same bytes
        raw.info["line_freq"] = 50.0
        fif = Path(f"{stem}_desc-clean_eeg.fif")
        raw.save(fif, overwrite=True, verbose="error")
        duration = raw.n_times / EEG_SFREQ
        sidecar = {"clean_file": str(fif), "sfreq": EEG_SFREQ, "duration_s": duration,
                   "synthetic": GENERATOR, "exclusion": None}  # fmt: skip
        Path(f"{stem}_desc-clean_eeg.json").write_text(json.dumps(sidecar, indent=1) + "\n")
        rows["eeg"].append(
            {
                **base,
                "task": task,
                "source": "",
                "clean_file": str(fif),
                "sfreq": EEG_SFREQ,
                "duration_s": duration,
                "clean_duration_s": duration,
                "percent_kept": 100.0,
                "n_bad_channels": 0,
                "bad_channels": "",
                "n_ica_removed": 0,
                "ica_removed_labels": "",
                "n_interpolated_common": 0,
                "status": "ok",
                "reason": "",
            }
        )
    return rows


def _participants(subjects: Sequence[ContractSubject]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "participant_id": [f"sub-{s.label}" for s in subjects],
            "site": [s.site for s in subjects],
            "sex": [s.sex for s in subjects],
            "age": [s.age for s in subjects],
            **{d: ["case" if s.diagnoses[d] else "control" for s in subjects] for d in DIAGNOSES},
            "mdd_presentation": [s.mdd_presentation or "none" for s in subjects],
        }
    )


def _label_columns(participants: pd.DataFrame, labels: Mapping[str, Any]) -> pd.DataFrame:
    """One Int64 column per cohort label, mapped from participants.tsv as for BIDS cohorts."""
    out = pd.DataFrame(index=participants.index)
    for label, spec in labels.items():
        if spec["column"] not in participants:
            raise SynthError(
                f"label {label}: column {spec['column']!r} is not in the synthetic "
                f"participants table (columns: {', '.join(participants.columns[1:])})"
            )
        values = participants[spec["column"]].astype(str).map(dict(spec["mapping"]))
        out[label] = values.astype("Int64")
    return out


def write_contract_cohort(
    cohort: Mapping[str, Any], out_dir: str | Path, n_jobs: int = 1
) -> dict[str, Any]:
    """Write a synthetic cohort's contract files into ``out_dir`` (``results/<cohort>``).

    Args:
        cohort: a validated cohort of format ``synthetic`` (``mcsp.config.load_cohort``): its
            ``synthetic`` block sizes the cohort, ``fmri.tasks`` and ``eeg.tasks`` name the
            recordings, ``labels`` map participants.tsv columns (ASD, ADHD, MDD: ``case`` /
            ``control``; sex: M / F) to classes, ``participants.site_column`` names the site.
        out_dir: folder of the contract files; paths inside the tables start with it.
        n_jobs: processes writing subjects (the files do not depend on it).

    Returns:
        The ground truth, also written to ``out_dir/ground_truth.json``.
    """
    settings = contract_settings(cohort.get("synthetic"), cohort)
    name = cohort["name"]
    out = Path(out_dir)
    subjects = plan_subjects(settings)
    participants = _participants(subjects)
    labels = _label_columns(participants, cohort.get("labels") or {})
    site_column = (cohort.get("participants") or {}).get("site_column", "site")
    sites = participants[site_column] if site_column else pd.Series("n/a", participants.index)
    out.mkdir(parents=True, exist_ok=True)
    _write_tsv(participants, out / "participants.tsv")
    jobs = [(s, settings, name, out) for s in subjects]
    _atlas()
    if n_jobs > 1:
        with process_pool(min(n_jobs, len(jobs))) as pool:
            results = list(pool.map(_simulate_subject, jobs, chunksize=8))
    else:
        results = [_simulate_subject(job) for job in jobs]
    rows = []
    for i, result in enumerate(results):
        for modality in ("fmri", "eeg"):
            for qc in result[modality]:
                path = qc["timeseries"] if modality == "fmri" else qc["clean_file"]
                rows.append(
                    {
                        **{c: qc.get(c, "") for c in ("cohort", "subject", "session", "task")},
                        "modality": modality,
                        "run": "",
                        "path": path,
                        "sidecar": str(Path(path).with_suffix(".json")),
                        "derivative": "",
                        "site": sites.iloc[i],
                        **labels.iloc[i].to_dict(),
                        "status": "ok",
                        "reason": "",
                    }
                )
    table = pd.DataFrame(rows, columns=HEAD_COLUMNS + list(labels) + TAIL_COLUMNS)
    for label in labels:
        table[label] = table[label].astype("Int64")
    inventory = Inventory(name, table)
    inventory.write(out / "inventory.tsv")
    (out / "inventory.txt").write_text(inventory.summary() + "\n")
    for modality, columns in (("fmri", FMRI_QC_COLUMNS), ("eeg", EEG_QC_COLUMNS)):
        qc = pd.DataFrame([r for result in results for r in result[modality]], columns=columns)
        _write_tsv(qc, out / f"{modality}_qc.tsv")
    truth = {
        "generator": GENERATOR,
        "version": __version__,
        "cohort": name,
        "settings": {
            "subjects": settings.subjects,
            "seed": settings.seed,
            "fmri_volumes": settings.fmri_volumes,
            "repetition_time": settings.repetition_time,
            "eeg_duration_s": settings.eeg_duration_s,
            "fmri_tasks": list(settings.fmri_tasks),
            "eeg_tasks": list(settings.eeg_tasks),
        },
        "atlas": ATLAS,
        "channels": CHANNEL_SETS[CHANNEL_SET],
        "eeg_sfreq": EEG_SFREQ,
        "factors": FACTORS,
        "couplings": {k: list(v) for k, v in COUPLINGS.items()},
        "effects": effect_definitions(settings.effects),
        "subjects": [
            {
                "subject": s.label,
                "site": s.site,
                "sex": s.sex,
                "age": s.age,
                **s.diagnoses,
                "mdd_presentation": s.mdd_presentation or None,
                "factors": {k: round(v, 6) for k, v in s.factors.items()},
            }
            for s in subjects
        ],
    }
    tmp = out / f"ground_truth.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(truth, indent=1) + "\n")
    os.replace(tmp, out / "ground_truth.json")
    log.info("synthetic contract cohort %s: %d subjects in %s", name, len(subjects), out)
    return truth
