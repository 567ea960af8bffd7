"""fMRI branch: confound cleaning, motion censoring and atlas parcellation of fMRIPrep outputs.

``clean_and_parcellate`` turns one preprocessed BOLD run into a time × ROI table: confounds come
from nilearn's ``load_confounds_strategy`` (fMRIPrep strategies), non-steady-state volumes are
dropped, high-motion volumes censored (FD, optionally std DVARS), and the signal is detrended,
band-passed and standardised by nilearn's maskers. Broken inputs raise ``FmriInputError``; runs
with too little data left come back with QC status ``excluded`` and a reason.
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from mcsp.atlases import Atlas, AtlasError, get_atlas, is_mni
from mcsp.exceptions import McspError
from mcsp.io import atomic_output, write_text

STRATEGIES = ("simple", "compcor", "scrubbing", "ica_aroma")
# Levels of load_confounds_strategy's motion / wm_csf / global_signal, most columns first.
CONFOUND_LEVELS = ("full", "derivatives", "power2", "basic")
LEVEL_OPTIONS = ("motion", "wm_csf", "global_signal")
# Default share of constant (zero-variance or empty) ROIs above which a run is excluded: the same
# for BIDS runs (fmri.max_constant_roi_fraction) and imported ones (see mcsp.imports).
MAX_CONSTANT_ROI_FRACTION = 0.1
# Columns of the per-cohort fMRI QC table (BIDS runs and imported time series alike).
QC_COLUMNS = [
    "cohort",
    "subject",
    "session",
    "task",
    "run",
    "atlas",
    "timeseries",
    "n_volumes",
    "n_non_steady_state",
    "n_censored",
    "pct_censored",
    "n_kept",
    "mean_fd",
    "zero_variance_rois",
    "empty_rois",
    "status",
    "reason",
]
# Keys of the config's `fmri` block that choose the atlas; the others go to clean_and_parcellate.
ATLAS_KEYS = {
    "atlas": "name",
    "atlas_path": "path",
    "atlas_labels_file": "labels_file",
    "atlas_space": "space",
    "sphere_radius_mm": "radius_mm",
}


class FmriInputError(McspError):
    """A BOLD image, brain mask or confounds file cannot be used."""


@dataclass
class ParcellationResult:
    """ROI time series (time × ROI, columns = ROI labels), JSON sidecar and QC row of one run."""

    timeseries: pd.DataFrame
    sidecar: dict[str, Any]
    qc: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.qc.get("status") == "ok"


def _space_of(path: Path) -> str | None:
    match = re.search(r"_space-([A-Za-z0-9]+)", path.name)
    return match.group(1) if match else None


def _load_bold(bold: Path) -> nib.Nifti1Image:
    if not bold.is_file():
        raise FmriInputError(f"BOLD file {bold} does not exist: check the fMRIPrep output path.")
    try:
        img = nib.load(str(bold))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:
        raise FmriInputError(
            f"BOLD file {bold} cannot be read ({type(exc).__name__}: {exc}); it is probably "
            "truncated or corrupt: re-run fMRIPrep for this run or re-copy the file."
        ) from exc
    if data.ndim != 4 or data.shape[3] < 2:
        raise FmriInputError(
            f"BOLD file {bold} has shape {data.shape}; a 4-D time series is needed: pass the "
            "`desc-preproc_bold` image, not a mask, reference or single volume."
        )
    bad = np.flatnonzero(~np.isfinite(data).all(axis=(0, 1, 2)))
    if bad.size:
        raise FmriInputError(
            f"BOLD file {bold} has NaN/inf values in {bad.size} volume(s) "
            f"(first: {bad[:5].tolist()}): re-run fMRIPrep for this run, or exclude it."
        )
    return nib.Nifti1Image(data, img.affine, img.header)


def _sidecar_for(bold: Path) -> Path:
    name = re.sub(r"\.nii(\.gz)?$", "", bold.name)
    return bold.with_name(name + ".json")


def _repetition_time(bold: Path, img: nib.Nifti1Image, tr: float | None) -> float:
    """TR from the argument, else the JSON sidecar, else the NIfTI header (if its unit is set)."""
    if tr is not None:
        return float(tr)
    sidecar = _sidecar_for(bold)
    if sidecar.is_file():
        try:
            value = json.loads(sidecar.read_text()).get("RepetitionTime")
        except json.JSONDecodeError as exc:
            raise FmriInputError(f"Sidecar {sidecar} is not valid JSON ({exc}): fix it.") from exc
        if value:
            return float(value)
    zooms = img.header.get_zooms()
    unit = img.header.get_xyzt_units()[1]
    scale = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}.get(unit)
    if len(zooms) > 3 and zooms[3] > 0 and scale is not None:
        return float(zooms[3]) * scale
    raise FmriInputError(
        f"BOLD file {bold}: no repetition time found (no RepetitionTime in {sidecar.name}, "
        "no time step with a time unit in the NIfTI header): add RepetitionTime to the sidecar "
        "or pass tr=."
    )


def _load_confounds(
    bold: Path, confounds: Path, strategy: str, options: dict[str, Any]
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Run nilearn's ``load_confounds_strategy`` on a confounds file wherever it lies."""
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    if not confounds.is_file():
        raise FmriInputError(
            f"Confounds file {confounds} does not exist: pass fMRIPrep's "
            "`desc-confounds_timeseries.tsv` of this run."
        )
    # nilearn finds the confounds from the image name: give it both side by side.
    with tempfile.TemporaryDirectory(prefix="mcsp-confounds-") as tmp:
        # nilearn accepts only `.nii.gz` names; it reads the name, not the image, so an
        # uncompressed `_bold.nii` is linked under the `.nii.gz` name (in the temporary folder).
        if re.search(r"_bold\.nii(\.gz)?$", bold.name):
            name = re.sub(r"\.nii$", ".nii.gz", bold.name)
        else:
            name = "bold.nii.gz"
        if strategy == "ica_aroma" and "desc-smoothAROMAnonaggr" not in name:
            name = "sub-x_desc-smoothAROMAnonaggr_bold.nii.gz"
        elif "_desc-" not in name:
            name = "sub-x_desc-preproc_bold.nii.gz"
        (Path(tmp) / name).symlink_to(bold.resolve())
        (Path(tmp) / "desc-confounds_timeseries.tsv").symlink_to(confounds.resolve())
        meta = confounds.with_suffix(".json")
        if meta.is_file():
            (Path(tmp) / "desc-confounds_timeseries.json").symlink_to(meta.resolve())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                conf, sample_mask = load_confounds_strategy(
                    str(Path(tmp) / name), denoise_strategy=strategy, **options
                )
        except Exception as exc:
            raise FmriInputError(
                f"Confounds file {confounds} does not fit strategy {strategy!r} "
                f"({type(exc).__name__}: {exc}): use fMRIPrep's full confounds file (with its "
                "JSON for compcor) or choose a strategy whose columns it has."
            ) from exc
    return conf, sample_mask


def nilearn_options(
    strategy: str,
    options: Mapping[str, Any] | None,
    fd_threshold: float | None,
    std_dvars_threshold: float | None,
) -> dict[str, Any]:
    """Arguments of ``load_confounds_strategy``: ``options``, plus the censoring thresholds
    for ``scrubbing`` (None = no censoring)."""
    merged = dict(options or {})
    if strategy == "scrubbing":
        merged.setdefault("fd_threshold", fd_threshold if fd_threshold is not None else np.inf)
        merged.setdefault(
            "std_dvars_threshold",
            std_dvars_threshold if std_dvars_threshold is not None else np.inf,
        )
    return merged


@dataclass(frozen=True)
class StrategyFit:
    """Whether a confounds file fits a strategy with given options; ``missing``: what it lacks."""

    strategy: str
    options: dict[str, Any]
    missing: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class ConfoundsCheck:
    """A confounds file against nilearn's strategies and the configured one.

    ``presets``: each nilearn strategy with its default options; ``chosen``: ``fmri.strategy``
    with ``fmri.strategy_options``; ``fix``: ``strategy_options`` that make the chosen strategy
    fit (None when it fits or nothing does); ``censor_problem``: why FD/DVARS censoring fails.
    """

    confounds: Path
    presets: dict[str, StrategyFit]
    chosen: StrategyFit
    fix: dict[str, Any] | None
    censor_problem: str | None


def strategy_fit(confounds: str | Path, strategy: str, options: Mapping[str, Any]) -> StrategyFit:
    """Try ``load_confounds_strategy`` on ``confounds`` exactly as ``clean_and_parcellate`` does.

    Raises:
        FmriInputError: the confounds file does not exist.
    """
    probe = Path("sub-x_desc-preproc_bold.nii.gz")  # nilearn reads the name only
    try:
        _load_confounds(probe, Path(confounds), strategy, dict(options))
    except FmriInputError as err:
        if err.__cause__ is None:
            raise
        return StrategyFit(strategy, dict(options), _missing_confounds(err.__cause__))
    return StrategyFit(strategy, dict(options))


def fitting_options(
    confounds: str | Path, strategy: str, options: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The ``options`` with the fewest ``motion``/``wm_csf``/``global_signal`` levels lowered
    (richest first) under which ``confounds`` fits ``strategy``; None when none does."""
    from nilearn.interfaces.fmriprep.load_confounds_strategy import preset_strategies

    current = {**preset_strategies.get(strategy, {}), **options}
    keys = [k for k in LEVEL_OPTIONS if current.get(k) in CONFOUND_LEVELS]
    changes = []
    for levels in itertools.product(CONFOUND_LEVELS, repeat=len(keys)):
        change = {k: v for k, v in zip(keys, levels, strict=True) if v != current[k]}
        if change and all(current[k] == "full" or v == "basic" for k, v in change.items()):
            changes.append(change)
    changes.sort(key=lambda c: (len(c), sum(CONFOUND_LEVELS.index(v) for v in c.values())))
    for change in changes:
        if strategy_fit(confounds, strategy, {**options, **change}).ok:
            return {**options, **change}
    return None


def check_confounds(confounds: str | Path, settings: Mapping[str, Any]) -> ConfoundsCheck:
    """Check one fMRIPrep confounds file against the config's ``fmri`` block before any job."""
    from nilearn.interfaces.fmriprep.load_confounds_strategy import preset_strategies

    confounds = Path(confounds)
    fd, dvars = settings.get("fd_threshold", 0.5), settings.get("std_dvars_threshold")
    presets = {
        name: strategy_fit(confounds, name, nilearn_options(name, None, fd, dvars))
        for name in preset_strategies
    }
    strategy = settings.get("strategy", "simple")
    options = nilearn_options(strategy, settings.get("strategy_options"), fd, dvars)
    chosen = strategy_fit(confounds, strategy, options)
    fix = None
    if not chosen.ok:
        fix = fitting_options(confounds, strategy, options)
        given = settings.get("strategy_options") or {}
        fix = fix and {k: v for k, v in fix.items() if k in given or k in LEVEL_OPTIONS}
    try:
        raw = pd.read_csv(confounds, sep="\t", na_values=["n/a"], nrows=1)
        _motion_censor(raw, confounds, fd, dvars)
        censor_problem = None
    except FmriInputError as err:
        censor_problem = str(err)
    except ValueError as err:  # pandas' parser and empty-data errors
        censor_problem = f"Confounds file {confounds} cannot be read as a TSV ({err})."
    return ConfoundsCheck(confounds, presets, chosen, fix, censor_problem)


def _missing_confounds(exc: BaseException) -> tuple[str, ...]:
    """The column names nilearn reports missing, else its message."""
    text = str(exc)
    if "json" in text and "CompCor" in text:
        return ("its JSON sidecar (desc-confounds_timeseries.json, needed for CompCor)",)
    listed = re.search(r"\[([^\]]*)\]", text) if "missing" in text or "not in" in text else None
    names = re.findall(r"'([^']+)'", listed.group(1)) if listed else []
    return tuple(sorted(set(names))) if names else (f"{type(exc).__name__}: {text}",)


def _motion_censor(
    raw: pd.DataFrame, confounds: Path, fd_threshold: float | None, dvars_threshold: float | None
) -> np.ndarray:
    """Boolean per volume: True where FD or std DVARS exceeds its threshold."""
    bad = np.zeros(len(raw), dtype=bool)
    for column, threshold in (
        ("framewise_displacement", fd_threshold),
        ("std_dvars", dvars_threshold),
    ):
        if threshold is None:
            continue
        if column not in raw:
            raise FmriInputError(
                f"Confounds file {confounds} has no {column!r} column, needed to censor at "
                f"{threshold}: use fMRIPrep's confounds file or set the threshold to None."
            )
        bad |= raw[column].fillna(0.0).to_numpy(dtype=float) > threshold
    return bad


def _usable_seeds(atlas: Atlas, img: nib.Nifti1Image, mask: Path | None) -> np.ndarray:
    """Per sphere: True where it holds at least one (in-mask) voxel of the data grid."""
    from nilearn.image import resample_to_img
    from scipy.spatial import cKDTree

    if mask is None:
        inside = np.ones(img.shape[:3], dtype=bool)
    else:
        mask_img = resample_to_img(
            str(mask),
            img.slicer[..., 0],
            interpolation="nearest",
            copy_header=True,
            force_resample=True,
        )
        inside = np.asarray(mask_img.dataobj) > 0
    voxels = np.column_stack(np.nonzero(inside))
    if voxels.size == 0:
        return np.zeros(len(atlas.coords), dtype=bool)
    world = nib.affines.apply_affine(img.affine, voxels)
    dist, _ = cKDTree(world).query(atlas.coords, k=1)
    # nilearn also counts the seed's nearest voxel, which may lie beyond a small radius.
    ijk = np.round(nib.affines.apply_affine(np.linalg.inv(img.affine), atlas.coords)).astype(int)
    on_grid = np.all((ijk >= 0) & (ijk < np.array(inside.shape)), axis=1)
    nearest_in = np.zeros(len(ijk), dtype=bool)
    nearest_in[on_grid] = inside[tuple(ijk[on_grid].T)]
    return (dist <= atlas.radius_mm) | nearest_in


def _make_masker(atlas: Atlas, mask: Path | None, tr: float, clean: dict[str, Any], seeds=None):
    from nilearn.maskers import NiftiLabelsMasker, NiftiSpheresMasker

    if atlas.kind == "spheres":
        return NiftiSpheresMasker(
            seeds=[tuple(c) for c in (atlas.coords if seeds is None else seeds)],
            radius=atlas.radius_mm,
            mask_img=None if mask is None else str(mask),
            allow_overlap=True,
            t_r=tr,
            **clean,
        )
    return NiftiLabelsMasker(
        labels_img=str(atlas.image),
        mask_img=None if mask is None else str(mask),
        resampling_target="data",
        t_r=tr,
        **clean,
    )


def clean_and_parcellate(
    bold: str | Path,
    mask: str | Path | None,
    confounds: str | Path,
    atlas: Atlas,
    *,
    strategy: str = "simple",
    strategy_options: dict[str, Any] | None = None,
    fd_threshold: float | None = 0.5,
    std_dvars_threshold: float | None = None,
    min_kept_fraction: float = 0.5,
    min_volumes: int = 10,
    detrend: bool = True,
    standardize: str | bool = "zscore_sample",
    low_pass: float | None = 0.1,
    high_pass: float | None = 0.01,
    tr: float | None = None,
    space: str | None = None,
    max_constant_roi_fraction: float = MAX_CONSTANT_ROI_FRACTION,
) -> ParcellationResult:
    """Clean one fMRIPrep BOLD run and extract ROI time series with ``atlas``.

    Volumes kept = not non-steady-state, FD <= ``fd_threshold`` and std DVARS <=
    ``std_dvars_threshold`` (each None = no censoring; the ``scrubbing`` strategy also drops short
    segments, nilearn's ``scrub``). A run keeping fewer than ``max(min_volumes,
    min_kept_fraction × steady-state volumes)`` comes back excluded. ``space`` is the data's
    template (default: the ``space-`` entity of the file name); a non-MNI one raises
    ``FmriInputError``. A run with more than ``max_constant_roi_fraction`` of its ROIs constant
    (no signal: off the field of view or mask) comes back excluded.
    """
    bold, confounds = Path(bold), Path(confounds)
    mask = None if mask is None else Path(mask)
    if strategy not in STRATEGIES:
        raise FmriInputError(
            f"Unknown confound strategy {strategy!r} for {bold}: "
            f"use one of {', '.join(STRATEGIES)}."
        )
    data_space = space or _space_of(bold)
    if not is_mni(atlas.space):
        raise AtlasError(
            f"Atlas {atlas.name} is in space {atlas.space!r}, not an MNI template; {bold} cannot "
            "be parcellated with it: use an MNI-space atlas or resample the atlas yourself."
        )
    if data_space is not None and not is_mni(data_space):
        raise FmriInputError(
            f"BOLD file {bold} is in space {data_space!r}, not an MNI template, so atlas "
            f"{atlas.name} ({atlas.space}) does not fit it: set fmriprep.output_space in the "
            "cohort file to an MNI space (fMRIPrep --output-spaces MNI152NLin2009cAsym) and use "
            "that output."
        )
    if mask is not None and not mask.is_file():
        raise FmriInputError(
            f"Brain mask {mask} does not exist: pass the run's brain mask or None."
        )

    img = _load_bold(bold)
    n_vols = img.shape[3]
    t_r = _repetition_time(bold, img, tr)

    options = nilearn_options(strategy, strategy_options, fd_threshold, std_dvars_threshold)
    conf, nilearn_mask = _load_confounds(bold, confounds, strategy, options)
    if len(conf) != n_vols:
        raise FmriInputError(
            f"Confounds file {confounds} has {len(conf)} rows but {bold} has {n_vols} volumes: "
            "pair each BOLD run with its own confounds file."
        )
    raw = pd.read_csv(confounds, sep="\t", na_values=["n/a"])
    nss_cols = [c for c in raw.columns if c.startswith("non_steady_state_outlier")]
    nss = raw[nss_cols].fillna(0).to_numpy().any(axis=1) if nss_cols else np.zeros(n_vols, bool)
    motion = _motion_censor(raw, confounds, fd_threshold, std_dvars_threshold)
    keep = ~nss & ~motion
    if strategy == "scrubbing" and nilearn_mask is not None:
        scrubbed = np.ones(n_vols, dtype=bool)
        scrubbed[np.asarray(nilearn_mask, dtype=int)] = False
        keep &= ~scrubbed
    censored = np.flatnonzero(~nss & ~keep)
    kept = np.flatnonzero(keep)
    n_steady = int((~nss).sum())
    fd = raw.get("framewise_displacement")

    sidecar: dict[str, Any] = {
        "RepetitionTime": t_r,
        "Atlas": atlas.name,
        "AtlasKind": atlas.kind,
        "AtlasSpace": atlas.space,
        "SphereRadiusMm": atlas.radius_mm,
        "ConfoundStrategy": strategy,
        "StrategyOptions": {k: _jsonable(v) for k, v in options.items()},
        "Confounds": list(conf.columns),
        "NonSteadyStateVolumes": np.flatnonzero(nss).tolist(),
        "CensoredVolumes": censored.tolist(),
        "KeptVolumes": kept.tolist(),
        "NumberOfVolumes": n_vols,
        "FDThreshold": fd_threshold,
        "StdDVARSThreshold": std_dvars_threshold,
        "Detrend": detrend,
        "Standardize": standardize,
        "LowPass": low_pass,
        "HighPass": high_pass,
        "Source": str(bold),
    }
    qc: dict[str, Any] = {
        "bold": str(bold),
        "atlas": atlas.name,
        "mean_fd": float(fd.mean(skipna=True)) if fd is not None else float("nan"),
        "n_volumes": n_vols,
        "n_non_steady_state": int(nss.sum()),
        "n_censored": int(censored.size),
        "pct_censored": 100.0 * censored.size / max(n_steady, 1),
        "n_kept": int(kept.size),
        "zero_variance_rois": [],
        "empty_rois": [],
        "status": "ok",
        "reason": "",
    }
    needed = max(min_volumes, int(np.ceil(min_kept_fraction * n_steady)))
    if kept.size < needed:
        qc["status"] = "excluded"
        qc["reason"] = (
            f"only {kept.size} of {n_vols} volumes left after censoring (need {needed}: "
            f"min_volumes={min_volumes}, min_kept_fraction={min_kept_fraction})"
        )
        return ParcellationResult(pd.DataFrame(columns=atlas.labels), sidecar, qc)

    clean = {
        "detrend": detrend,
        "standardize": standardize,
        "low_pass": low_pass,
        "high_pass": high_pass,
    }
    seeds = None
    empty: list[str] = []
    if atlas.kind == "spheres":
        usable = _usable_seeds(atlas, img, mask)
        if not usable.any():
            raise FmriInputError(
                f"No sphere of atlas {atlas.name} overlaps the brain mask of {bold}: check "
                "that the data are in MNI space and the mask is the run's brain mask."
            )
        seeds = atlas.coords[usable]
        empty = [lab for lab, ok in zip(atlas.labels, usable, strict=True) if not ok]
    masker = _make_masker(atlas, mask, t_r, clean, seeds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signals = masker.fit_transform(img, confounds=conf, sample_mask=kept)
    except ValueError as exc:
        if "padlen" in str(exc):  # scipy's filtfilt inside nilearn's band-pass
            qc["status"] = "excluded"
            qc["reason"] = (
                f"run too short for the band-pass filter ({kept.size} volumes kept; {exc}): "
                "use longer runs, or set fmri.high_pass / fmri.low_pass to null"
            )
            return ParcellationResult(pd.DataFrame(columns=atlas.labels), sidecar, qc)
        raise FmriInputError(
            f"Parcellating {bold} with atlas {atlas.name} failed ({exc}): check that the atlas "
            "and brain mask overlap the data."
        ) from exc
    columns = _columns(masker, atlas, signals.shape[1], empty)
    table = pd.DataFrame(0.0, index=range(kept.size), columns=atlas.labels)
    table[columns] = signals
    zero = table.columns[table.std(axis=0).fillna(0).to_numpy() < 1e-8].tolist()
    qc["zero_variance_rois"] = zero
    qc["empty_rois"] = empty
    sidecar["ZeroVarianceROIs"] = zero
    reason = constant_roi_reason(
        len(zero), table.shape[1], max_constant_roi_fraction, "fmri.max_constant_roi_fraction"
    )
    if reason:
        qc["status"] = "excluded"
        qc["reason"] = (
            f"{reason}: the BOLD or its brain mask covers only part of the brain (slab "
            f"acquisition or failed registration?); check {bold.name} and its mask, use an atlas "
            "of the covered regions, or raise fmri.max_constant_roi_fraction"
        )
        return ParcellationResult(pd.DataFrame(columns=atlas.labels), sidecar, qc)
    return ParcellationResult(table, sidecar, qc)


def constant_roi_reason(n_constant: int, n_roi: int, limit: float, setting: str) -> str | None:
    """Why a run with ``n_constant`` of ``n_roi`` constant ROIs is over ``limit``; None if not."""
    if n_roi == 0 or n_constant <= limit * n_roi:
        return None
    return (
        f"{n_constant} of {n_roi} ROIs constant ({n_constant / n_roi:.0%}, more than "
        f"{setting} {limit:g})"
    )


def _columns(masker, atlas: Atlas, n_out: int, empty: list[str]) -> list[str]:
    """ROI labels of the masker's output columns (ROIs off the data grid or mask are missing)."""
    if atlas.kind == "spheres":
        missing = set(empty)
        return [lab for lab in atlas.labels if lab not in missing]
    ids = [
        int(i) for i in getattr(masker, "region_ids_", {}).values() if i != 0 and i != "background"
    ]
    name_of = dict(zip(atlas.label_ids, atlas.labels, strict=True))
    columns = [name_of[i] for i in ids if i in name_of]
    if len(columns) != n_out:
        raise AtlasError(
            f"Atlas {atlas.name}: its label table does not match its image (image ids {ids[:10]}…, "
            f"table ids {atlas.label_ids[:10]}…): give the label table of this image."
        )
    return columns


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def timeseries_path(out_dir: str | Path, prefix: str, atlas: str) -> Path:
    """BIDS-derivative name ``<prefix>_atlas-<atlas>_timeseries.tsv`` inside ``out_dir``."""
    return Path(out_dir) / f"{prefix}_atlas-{atlas}_timeseries.tsv"


def write_timeseries(result: ParcellationResult, out_tsv: str | Path) -> tuple[Path, Path]:
    """Write the time series TSV (header = ROI labels) and its JSON sidecar (with the QC row)."""
    out_tsv = Path(out_tsv)
    if not out_tsv.name.endswith("_timeseries.tsv"):
        raise McspError(
            f"Output {out_tsv} must be named '…_atlas-<name>_timeseries.tsv': fix the rule output."
        )
    table = result.timeseries
    # np.savetxt writes the same text as pandas' to_csv(float_format="%.6g"), ~5x faster
    with atomic_output(out_tsv) as tmp:
        np.savetxt(
            tmp,
            table.to_numpy(dtype=float).reshape(len(table), table.shape[1]),
            fmt="%.6g",
            delimiter="\t",
            header="\t".join(map(str, table.columns)),
            comments="",
        )
    sidecar = out_tsv.with_suffix(".json")
    payload = {**result.sidecar, "QC": result.qc}
    write_text(sidecar, json.dumps(payload, indent=2, default=_jsonable) + "\n")
    return out_tsv, sidecar


def functional_connectivity(ts: pd.DataFrame | np.ndarray) -> np.ndarray:
    """ROI × ROI Pearson correlation, Fisher z; zero on the diagonal and for flat ROIs."""
    x = np.asarray(ts, dtype=float)
    if x.ndim != 2 or x.shape[0] < 3:
        raise McspError(f"functional_connectivity needs a time × ROI array, got shape {x.shape}.")
    x = x - x.mean(axis=0)
    norm = np.sqrt((x**2).sum(axis=0))
    flat = norm < 1e-12
    x = x / np.where(flat, 1.0, norm)
    r = np.clip(x.T @ x, -1 + 1e-7, 1 - 1e-7)
    z = np.arctanh(r)
    z[flat, :] = 0.0
    z[:, flat] = 0.0
    np.fill_diagonal(z, 0.0)
    return z


def split_settings(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config's ``fmri`` block as (``get_atlas`` arguments, ``clean_and_parcellate`` ones)."""
    atlas = {arg: settings[key] for key, arg in ATLAS_KEYS.items() if key in settings}
    clean = {k: v for k, v in settings.items() if k not in ATLAS_KEYS}
    if clean.get("standardize") is False:
        clean["standardize"] = False
    return atlas, clean


def run_files(preproc_bold: str | Path) -> dict[str, Path | None]:
    """fMRIPrep's brain mask and confounds TSV of a preprocessed BOLD run (mask None if absent)."""
    bold = Path(preproc_bold)
    name = bold.name
    if "_desc-preproc_bold.nii" not in name:
        raise FmriInputError(
            f"{bold}: not an fMRIPrep preprocessed BOLD (…_desc-preproc_bold.nii.gz); point the "
            "cohort at fMRIPrep's derivatives folder."
        )
    mask_name = re.sub(r"_desc-preproc_bold\.nii(\.gz)?$", "_desc-brain_mask.nii.gz", name)
    mask = bold.with_name(mask_name)
    stem = name.split("_space-")[0] if "_space-" in name else name.split("_desc-")[0]
    confounds = bold.with_name(f"{stem}_desc-confounds_timeseries.tsv")
    return {"bold": bold, "mask": mask if mask.is_file() else None, "confounds": confounds}


def find_preproc_bold(derivatives: str | Path, stem: str, space: str) -> Path:
    """The preprocessed BOLD of output stem ``stem`` (``sub-…/[ses-…/]func/<entities>``)."""
    folder, _, entities = stem.rpartition("/")
    func = Path(derivatives) / folder
    found = sorted(func.glob(f"{entities}_space-{space}_*desc-preproc_bold.nii*"))
    if not found:
        raise FmriInputError(
            f"No fMRIPrep preprocessed BOLD {entities}_space-{space}[_res-…]_desc-preproc_bold."
            f"nii.gz in {func}: check that fMRIPrep finished for this subject and wrote space "
            f"{space} (fmriprep.output_space / output_spaces in the cohort file)."
        )
    return found[0]


def process_run(
    bold: str | Path | Callable[[], Path],
    atlas_settings: Mapping[str, Any],
    clean_settings: Mapping[str, Any],
    out_tsv: str | Path,
    *,
    strict: bool = False,
) -> dict[str, Any]:
    """Clean and parcellate one fMRIPrep run and write its time series + sidecar; return QC.

    ``bold`` may be a function that finds it (e.g. ``find_preproc_bold``). Mask and confounds
    are found beside it as fMRIPrep names them. A run whose input is missing or broken
    (``FmriInputError``) is written as an empty table with status ``excluded`` and the error as
    its reason, unless ``strict``; atlas and settings errors always raise.
    """
    atlas = get_atlas(**atlas_settings)
    try:
        if callable(bold):
            bold = bold()
        files = run_files(bold)
        result = clean_and_parcellate(
            files["bold"], files["mask"], files["confounds"], atlas, **clean_settings
        )
    except FmriInputError as err:
        if strict:
            raise
        source = "" if callable(bold) else str(bold)
        sidecar = {"Atlas": atlas.name, "Source": source, "Error": str(err)}
        qc = {"bold": source, "atlas": atlas.name, "status": "excluded", "reason": str(err)}
        result = ParcellationResult(pd.DataFrame(columns=atlas.labels), sidecar, qc)
    write_timeseries(result, out_tsv)
    return result.qc


def qc_table(sidecars: Iterable[str | Path], cohort: str, inventory=None) -> pd.DataFrame:
    """The cohort's fMRI QC table from the runs' time-series sidecars (``QC_COLUMNS``).

    Runs the inventory already excluded (``inventory``, an ``mcsp.bids.Inventory``) are added
    with their reason, so the table accounts for every resting-state run of the cohort.
    """
    from mcsp.bids import parse_name

    rows = []
    for path in sidecars:
        path = Path(path)
        meta = json.loads(path.read_text())
        qc = meta.get("QC", {})
        entities = parse_name(path.name)[0]
        row = {
            "cohort": cohort,
            "subject": entities.get("sub", ""),
            "session": entities.get("ses", ""),
            "task": entities.get("task", ""),
            "run": entities.get("run", ""),
            "atlas": qc.get("atlas", meta.get("Atlas", "")),
            "timeseries": str(path.with_suffix(".tsv")),
        }
        for column in QC_COLUMNS[7:]:
            value = qc.get(column, "")
            row[column] = ";".join(value) if isinstance(value, list) else value
        rows.append(row)
    if inventory is not None:
        table = inventory.table
        bad = table[(table["modality"] == "fmri") & ~table["status"].isin(["ok", "warning"])]
        for record in bad.to_dict("records"):
            rows.append(
                {
                    "cohort": cohort,
                    **{k: record.get(k, "") for k in ("subject", "session", "task", "run")},
                    "status": record["status"],
                    "reason": f"inventory: {record['reason']}",
                }
            )
    df = pd.DataFrame(rows, columns=QC_COLUMNS)
    return df.sort_values(["subject", "session", "task", "run"], kind="stable").reset_index(
        drop=True
    )


def write_qc_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a QC table as TSV (``n/a`` for missing values)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.4g")
    return path
