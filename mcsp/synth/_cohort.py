"""generate_cohort: plan the cohort, simulate subjects in parallel, write BIDS, swap it in."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mcsp import __version__
from mcsp.parallel import process_pool
from mcsp.synth import _eeg, _fmri
from mcsp.synth._design import (
    BAD_CHANNEL_FRACTION,
    BANDS,
    DIAGNOSES,
    EEG_TASKS,
    FMRI_FC_NETWORKS,
    KEY_EEG,
    KEY_FMRI,
    MULTIMODAL_NETWORKS,
    REFERENCE_TR,
    SITE_BY_NAME,
    SITES,
    Site,
    SubjectPlan,
    SynthError,
    acquisition_time,
    check_effects,
    effect_definitions,
    plan_cohort,
    rng_for,
    subject_traits,
)

log = logging.getLogger(__name__)

GENERATOR = "mcsp.synth"
GROUND_TRUTH = Path("code") / "ground_truth.json"
ROI_LABELS = Path("code") / "roi_labels.nii.gz"
FMRIPREP_VERSION = "25.2.7"  # the release pinned in containers/fmriprep.yaml
FMRI_MINUTES = 0  # fMRI starts each session, EEG follows (see _eeg.eeg_minutes)


@dataclass(frozen=True)
class _Settings:
    seed: int
    eeg_duration_s: float
    fmri_volumes: int
    fmri_voxel_size_mm: int
    effects: dict[str, float]


def generate_cohort(
    out_dir: str | Path,
    n_subjects: int,
    seed: int,
    *,
    eeg_duration_s: float = 60.0,
    fmri_volumes: int = 150,
    fmri_voxel_size_mm: int = 4,
    effects: Mapping[str, float] | None = None,
    n_jobs: int = 1,
) -> dict:
    """Write a synthetic multi-site BIDS cohort (EEG + fMRIPrep-like fMRI) with planted effects.

    The same arguments give byte-identical files, whatever ``n_jobs``. ``out_dir`` must be new,
    empty, or a cohort written earlier by this function (it is then replaced). Subjects are
    written into a temporary sibling folder that is renamed to ``out_dir`` only when complete.

    Args:
        out_dir: BIDS root to write.
        n_subjects: number of subjects (diagnoses ~40% control, 20% ADHD, ASD, MDD each).
        seed: non-negative random seed.
        eeg_duration_s: length of each resting EEG run (eyes open and eyes closed).
        fmri_volumes: volumes of a BOLD run at a TR of 2 s. Every site records runs of the same
            duration (``fmri_volumes`` x 2 s, as real studies do), so the site with TR 0.8 s
            records 2.5 times as many volumes and the one with TR 2.5 s 0.8 times as many.
        fmri_voxel_size_mm: voxel size of the MNI152 grid of the preprocessed BOLD.
        effects: sizes of the planted effects (keys of ``DEFAULT_EFFECTS``; 0 disables one).
        n_jobs: parallel processes (-1: one per CPU).

    Returns:
        The ground truth, also written to ``out_dir/code/ground_truth.json``.
    """
    checked = check_effects(effects)
    _check_arguments(n_subjects, seed, eeg_duration_s, fmri_volumes, fmri_voxel_size_mm, n_jobs)
    settings = _Settings(
        int(seed), float(eeg_duration_s), int(fmri_volumes), int(fmri_voxel_size_mm), checked
    )
    n_subjects = int(n_subjects)
    out = Path(os.path.abspath(out_dir))
    _check_out_dir(out)
    plans = plan_cohort(n_subjects, seed)
    geometry = _fmri.fmri_geometry(fmri_voxel_size_mm) if any(p.has_fmri for p in plans) else None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f"{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        records = _simulate_all(tmp, plans, settings, n_jobs)
        truth = _ground_truth(plans, records, settings, geometry)
        _write_top_level(tmp, plans, truth, geometry)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("synthetic cohort of %d subjects written to %s", n_subjects, out)
    return truth


def _check_arguments(
    n_subjects: int,
    seed: int,
    eeg_duration_s: float,
    fmri_volumes: int,
    fmri_voxel_size_mm: int,
    n_jobs: int,
) -> None:
    def is_int(value: object) -> bool:
        return isinstance(value, int | np.integer) and not isinstance(value, bool)

    def is_number(value: object) -> bool:
        return isinstance(value, int | float | np.number) and not isinstance(value, bool)

    checks = [
        ("n_subjects", n_subjects, is_int(n_subjects) and n_subjects >= 1, "an integer >= 1"),
        ("seed", seed, is_int(seed) and seed >= 0, "an integer >= 0"),
        (
            "eeg_duration_s",
            eeg_duration_s,
            is_number(eeg_duration_s) and eeg_duration_s >= 2,
            "a number of seconds >= 2",
        ),
        ("fmri_volumes", fmri_volumes, is_int(fmri_volumes) and fmri_volumes >= 20, ">= 20"),
        (
            "fmri_voxel_size_mm",
            fmri_voxel_size_mm,
            is_int(fmri_voxel_size_mm) and 1 <= fmri_voxel_size_mm <= 8,
            "an integer from 1 to 8",
        ),
        ("n_jobs", n_jobs, is_int(n_jobs) and (n_jobs >= 1 or n_jobs == -1), ">= 1 or -1"),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise SynthError(f"{name} must be {expected}, got {value!r}")


def _is_synthetic(folder: Path) -> bool:
    try:
        return json.loads((folder / GROUND_TRUTH).read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} exists and is not a folder; choose a new folder for the cohort")
    if out.is_dir() and any(out.iterdir()) and not _is_synthetic(out):
        raise SynthError(
            f"{out} is not empty and holds no synthetic cohort ({GROUND_TRUTH} written by "
            f"{GENERATOR} is missing); refusing to replace it: choose a new or empty folder"
        )


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the complete cohort in ``tmp`` (two renames)."""
    if out.exists():
        old = out.parent / f"{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)


def _simulate_all(
    root: Path, plans: list[SubjectPlan], settings: _Settings, n_jobs: int
) -> list[dict]:
    jobs = [(root, plan, settings) for plan in plans]
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    n_jobs = min(n_jobs, len(plans))
    if n_jobs == 1:
        records = [_simulate_subject(job) for job in jobs]
    else:
        with process_pool(n_jobs) as pool:
            records = list(pool.map(_simulate_subject, jobs))
    shutil.rmtree(root / ".work", ignore_errors=True)
    return records


def _simulate_subject(job: tuple[Path, SubjectPlan, _Settings]) -> dict:
    """Write one subject's files; return its ground-truth record."""
    from threadpoolctl import threadpool_limits

    root, plan, settings = job
    traits = subject_traits(settings.seed, plan.index)
    record = {
        "participant_id": f"sub-{plan.label}",
        **{k: v for k, v in asdict(plan).items() if k not in ("index", "label", "bad_eeg")},
        "sessions": list(plan.sessions),
        "traits": {k: v for k, v in traits.items() if k != "coupling_jitter_seed"},
        "recordings": [],
    }
    scans: dict[str, list[tuple[str, str]]] = {session: [] for session in plan.sessions}
    with threadpool_limits(1):
        if plan.has_fmri:
            record["fmri_latent_coupling"] = _fmri_subject(
                root, plan, traits, settings, record, scans
            )
        if plan.has_eeg:
            _eeg_subject(root, plan, traits, settings, record, scans)
    for session, rows in scans.items():
        table = pd.DataFrame(sorted(rows), columns=["filename", "acq_time"])
        stem = f"sub-{plan.label}_ses-{session}_scans.tsv"
        table.to_csv(root / f"sub-{plan.label}" / f"ses-{session}" / stem, sep="\t", index=False)
    log.info("simulated sub-%s", plan.label)
    return record


def _fmri_subject(
    root: Path, plan: SubjectPlan, traits: dict, settings: _Settings, record: dict, scans: dict
) -> dict[str, float]:
    geometry = _fmri.fmri_geometry(settings.fmri_voxel_size_mm)
    site = SITE_BY_NAME[plan.site]
    coupling = _fmri.coupling_matrix(
        geometry.networks, plan, traits["coupling_jitter_seed"], settings.effects
    )
    subject_dir = root / f"sub-{plan.label}"
    n_vols = site.fmri_volumes(settings.fmri_volumes)
    for session in plan.sessions:
        rng = rng_for(settings.seed, KEY_FMRI, plan.index, int(session))
        bold, motion = _fmri.simulate_bold(
            rng, geometry, coupling, traits, site, n_vols, settings.effects["site"]
        )
        stem = f"sub-{plan.label}_ses-{session}_task-rest"
        func = subject_dir / f"ses-{session}" / "func"
        name = _fmri.write_raw_func(func, stem, n_vols, site)
        derivative = root / "derivatives" / "fmriprep" / f"sub-{plan.label}" / f"ses-{session}"
        source = f"bids:raw:sub-{plan.label}/ses-{session}/func/{name}"
        stats = _fmri.write_fmriprep_run(
            derivative / "func", stem, bold, motion, geometry, site, source
        )
        record["recordings"].append(
            {"session": session, "modality": "fmri", "task": "rest", "n_volumes": n_vols, **stats}
        )
        scans[session].append((f"func/{name}", _iso(acquisition_time(session, FMRI_MINUTES))))
    _fmri.write_raw_t1w(subject_dir / "ses-1" / "anat", f"sub-{plan.label}_ses-1")
    index = {name: k for k, name in enumerate(geometry.networks)}
    return {
        "-".join(pair): float(coupling[index[pair[0]], index[pair[1]]])
        for pair in (FMRI_FC_NETWORKS, MULTIMODAL_NETWORKS)
    }


def _eeg_subject(
    root: Path, plan: SubjectPlan, traits: dict, settings: _Settings, record: dict, scans: dict
) -> None:
    site = SITE_BY_NAME[plan.site]
    work = root / ".work" / f"sub-{plan.label}"  # MNE-BIDS writes a whole dataset: keep it apart
    for session in plan.sessions:
        for task_index, task in enumerate(EEG_TASKS):
            rng = rng_for(settings.seed, KEY_EEG, plan.index, int(session), task_index)
            raw, params = _eeg.simulate_eeg(
                rng, plan, traits, site, session, task, settings.eeg_duration_s, settings.effects
            )
            path = _eeg.write_eeg(raw, work, plan, session, task, site)
            record["recordings"].append(
                {"session": session, "modality": "eeg", "task": task, **params}
            )
            time = acquisition_time(session, _eeg.eeg_minutes(task))
            scans[session].append((f"eeg/{path.name}", _iso(time)))
        target = root / f"sub-{plan.label}" / f"ses-{session}" / "eeg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(work / f"sub-{plan.label}" / f"ses-{session}" / "eeg", target)
    shutil.rmtree(work)


def _iso(time) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _ground_truth(
    plans: list[SubjectPlan],
    records: list[dict],
    settings: _Settings,
    geometry: _fmri.FmriGeometry | None,
) -> dict:
    size = settings.effects["site"]
    bad_channels = [
        {"participant_id": r["participant_id"], "session": rec["session"], "task": rec["task"]}
        | rec["bad_channel"]
        for r in records
        for rec in r["recordings"]
        if rec.get("bad_channel")
    ]
    truth = {
        "generator": GENERATOR,
        "version": __version__,
        "seed": settings.seed,
        "parameters": {
            "n_subjects": len(plans),
            "eeg_duration_s": settings.eeg_duration_s,
            "fmri_volumes": settings.fmri_volumes,
            "fmri_run_duration_s": settings.fmri_volumes * REFERENCE_TR,
            "fmri_voxel_size_mm": settings.fmri_voxel_size_mm,
            "effects": settings.effects,
        },
        "effects": effect_definitions(settings.effects),
        "sites": {site.name: _site_truth(site, size, settings.fmri_volumes) for site in SITES},
        "eeg": _eeg_truth(),
        "fmri": _fmri_truth(geometry) if geometry is not None else None,
        "bad_channels": bad_channels,
        "subjects": records,
    }
    return json.loads(json.dumps(truth))


def _site_truth(site: Site, size: float, fmri_volumes: int) -> dict:
    """Acquisition and batch factors of a site, with the volumes of its BOLD runs."""
    acquisition = site.acquisition(size)
    acquisition["fmri"]["volumes"] = site.fmri_volumes(fmri_volumes)
    return acquisition


def _eeg_truth() -> dict:
    return {
        "tasks": list(EEG_TASKS),
        "units": "V",
        "bands_hz": BANDS,
        "forward_model": (
            "gain = exp(-d^2 / (2 w^2)), d = distance between unit directions of source and "
            "electrode on the montage's fitted sphere; w per named source (sources) and "
            f"{_eeg.BACKGROUND_WIDTH} for the 1/f background sources"
        ),
        "sources": {
            name: {"electrode_biosemi64": ch, "band": band, "width": width}
            for name, (ch, band, width) in _eeg.SOURCES.items()
        },
        "peak_amplitude_uv": _eeg.AMPLITUDE_UV,
        "regions": {site.name: _eeg.eeg_regions(site) for site in SITES},
        "artefacts": {
            "blinks_per_s": _eeg.BLINK_RATE_HZ,
            "veog_channel": "VEOG (type eog) at sites with veog_channel true",
            "bad_channel_fraction": BAD_CHANNEL_FRACTION,
            "bad_channel_kinds": {
                "flat": "all zeros",
                "noisy": f"+{_eeg.BAD_NOISE_UV:g} µV white noise",
            },
        },
    }


def _fmri_truth(geometry: _fmri.FmriGeometry) -> dict:
    return {
        "space": _fmri.SPACE,
        "grid": {"shape": list(geometry.shape), "affine": geometry.affine.tolist()},
        "n_brain_voxels": len(geometry.coords),
        "roi_radius_mm": _fmri.ROI_RADIUS_MM,
        "roi_assignment": "each brain voxel within roi_radius_mm of a ROI centre, nearest centre",
        "roi_label_image": str(ROI_LABELS),
        "within_network_loading": _fmri.WITHIN_NETWORK_LOADING,
        "networks": list(geometry.networks),
        "baseline_coupling": {
            "default": _fmri.BASE_COUPLING,
            "pairs": {"-".join(pair): value for pair, value in _fmri.NETWORK_COUPLING.items()},
            "subject_jitter_sd": _fmri.COUPLING_JITTER_SD,
        },
        "signal_pct": _fmri.BOLD_SIGNAL_PCT,
        "noise_pct": _fmri.NOISE_PCT,
        "motion_outlier_rule": (
            f"framewise_displacement > {_fmri.FD_THRESHOLD_MM} mm or std_dvars > "
            f"{_fmri.STD_DVARS_THRESHOLD}"
        ),
        "rois": geometry.roi_table(),
    }


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def _write_top_level(
    root: Path, plans: list[SubjectPlan], truth: dict, geometry: _fmri.FmriGeometry | None
) -> None:
    generated_by = {"Name": GENERATOR, "Version": __version__, "Description": "synthetic data"}
    _write_json(
        root / "dataset_description.json",
        {
            "Name": "mcsp synthetic multi-site resting-state EEG and fMRI cohort",
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["mcsp synthetic data generator"],
            "GeneratedBy": [generated_by],
        },
    )
    participants = pd.DataFrame(
        {
            "participant_id": [f"sub-{p.label}" for p in plans],
            "age": [p.age for p in plans],
            "sex": [p.sex for p in plans],
            "site": [p.site for p in plans],
            "diagnosis": [p.diagnosis for p in plans],
        }
    )
    participants.to_csv(root / "participants.tsv", sep="\t", index=False)
    _write_json(root / "participants.json", _participants_sidecar())
    (root / "README").write_text(_readme(truth))
    fmriprep = root / "derivatives" / "fmriprep"
    _write_json(
        fmriprep / "dataset_description.json",
        {
            "Name": "fMRIPrep - fMRI PREProcessing workflow (synthetic outputs)",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [
                {"Name": "fMRIPrep", "Version": FMRIPREP_VERSION},
                generated_by,
            ],
            "DatasetLinks": {"raw": "../.."},
        },
    )
    (root / GROUND_TRUTH).parent.mkdir(exist_ok=True)
    if geometry is not None:
        geometry.label_image().to_filename(root / ROI_LABELS)
    _write_json(root / GROUND_TRUTH, truth)


def _participants_sidecar() -> dict:
    return {
        "participant_id": {"Description": "Unique participant identifier"},
        "age": {"Description": "Age at the first session", "Units": "year"},
        "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
        "site": {
            "Description": "Acquisition site (EEG montage, sampling rate, mains, fMRI TR differ)",
            "Levels": {
                site.name: f"EEG {site.montage} at {site.sfreq:g} Hz, {site.line_freq:g} Hz mains; "
                f"fMRI TR {site.tr:g} s"
                for site in SITES
            },
        },
        "diagnosis": {
            "Description": "Diagnostic group (synthetic; see code/ground_truth.json)",
            "Levels": {
                "control": "typically developing / healthy control",
                "ADHD": "attention-deficit/hyperactivity disorder",
                "ASD": "autism spectrum disorder",
                "MDD": "major depressive disorder",
            },
        },
    }


def _readme(truth: dict) -> str:
    effects = "\n".join(
        f"- {name} ({e['label']}, size {e['size']:g}): {e['definition']}"
        for name, e in truth["effects"].items()
    )
    duration = truth["parameters"]["fmri_run_duration_s"]
    volumes = ", ".join(
        f"{name}: {site['fmri']['volumes']} at TR {site['fmri']['repetition_time']:g} s"
        for name, site in truth["sites"].items()
    )
    return f"""# mcsp synthetic cohort

Synthetic data written by `{GENERATOR}` {truth["version"]} (seed {truth["seed"]}); no real person.

- Raw EEG: resting state, tasks `eyesopen` and `eyesclosed`, BrainVision, montage per site.
- fMRI: `derivatives/fmriprep` holds fMRIPrep-like outputs ({_fmri.SPACE} preprocessed BOLD,
  brain mask, confounds). Resting runs last {duration:g} s at every site (volumes: {volumes}).
  The raw `func/*_bold.nii.gz` and `anat/*_T1w.nii.gz` are tiny
  placeholders that keep the raw dataset valid BIDS; they hold no signal.
- Diagnoses: {", ".join(DIAGNOSES)}. Planted effects (details and per-subject latent values in
  `code/ground_truth.json`; ROI label image used to plant fMRI signal in `code/roi_labels.nii.gz`):

{effects}
"""
