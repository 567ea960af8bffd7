"""Benchmark clean_and_parcellate on a full-size 2 mm MNI run: seconds per run and peak memory.

A synthetic fMRIPrep-like run (97 × 115 × 97 grid of MNI152NLin2009cAsym res-2, 200 volumes,
random data inside nilearn's MNI152 brain mask, a full confounds TSV) is written once; each atlas
then runs in a fresh subprocess so that its peak resident memory is its own.

python benchmarks/bench_parcellation.py --out benchmarks/out/parcellation
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SCHAEFER400 = (
    Path(__file__).resolve().parents[2]
    / "shared/data/atlases/Schaefer2018_400Parcels_7Networks_order_FSLMNI152_2mm.nii.gz"
)
SHAPE = (97, 115, 97)
AFFINE = np.array([[2.0, 0, 0, -96.0], [0, 2.0, 0, -132.0], [0, 0, 2.0, -78.0], [0, 0, 0, 1.0]])
PREFIX = "sub-01_task-rest"


def make_run(out: Path, n_volumes: int, tr: float = 2.0, seed: int = 0) -> dict[str, Path]:
    """Write a BOLD run, its brain mask, sidecar and fMRIPrep-style confounds into ``out``."""
    import nibabel as nib
    import pandas as pd
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.image import resample_img

    out.mkdir(parents=True, exist_ok=True)
    space = f"{PREFIX}_space-MNI152NLin2009cAsym"
    paths = {
        "bold": out / f"{space}_desc-preproc_bold.nii.gz",
        "mask": out / f"{space}_desc-brain_mask.nii.gz",
        "confounds": out / f"{PREFIX}_desc-confounds_timeseries.tsv",
    }
    if all(p.is_file() for p in paths.values()):
        return paths
    rng = np.random.default_rng(seed)
    mask = resample_img(
        load_mni152_brain_mask(resolution=2),
        target_affine=AFFINE,
        target_shape=SHAPE,
        interpolation="nearest",
        force_resample=True,
        copy_header=True,
    )
    inside = np.asarray(mask.dataobj) > 0
    nib.save(nib.Nifti1Image(inside.astype(np.uint8), AFFINE), paths["mask"])
    data = np.zeros((*SHAPE, n_volumes), dtype=np.int16)
    data[inside] = (1000 + 20 * rng.standard_normal((int(inside.sum()), n_volumes))).astype(
        np.int16
    )
    img = nib.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((2.0, 2.0, 2.0, tr))
    nib.save(img, paths["bold"])
    paths["bold"].with_name(paths["bold"].name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"RepetitionTime": tr})
    )
    conf = {}
    for axis in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf", "white_matter"):
        base = np.cumsum(rng.normal(0, 0.02, n_volumes))
        deriv = np.r_[np.nan, np.diff(base)]
        conf |= {axis: base, f"{axis}_power2": base**2}
        conf |= {f"{axis}_derivative1": deriv, f"{axis}_derivative1_power2": deriv**2}
    fd = np.abs(rng.normal(0.15, 0.1, n_volumes))
    fd[0] = np.nan
    conf |= {
        "framewise_displacement": fd,
        "std_dvars": np.r_[np.nan, rng.normal(1, 0.2, n_volumes - 1)],
    }
    conf |= {"dvars": conf["std_dvars"] * 20, "rmsd": fd / 2}
    t = np.arange(n_volumes)
    for k in range(3):
        conf[f"cosine{k:02d}"] = np.cos(np.pi * (k + 1) * (t + 0.5) / n_volumes)
    pd.DataFrame(conf).to_csv(paths["confounds"], sep="\t", index=False, na_rep="n/a")
    return paths


def run_one(atlas_name: str, out: Path) -> dict:
    """One clean_and_parcellate call (in this process); returns seconds and the QC row."""
    from mcsp.atlases import get_atlas
    from mcsp.fmri import clean_and_parcellate

    paths = make_run(out, 0)  # files exist already
    kwargs = {"path": SCHAEFER400} if atlas_name == "schaefer400" else {}
    atlas = get_atlas(atlas_name, **kwargs)
    start = time.perf_counter()
    result = clean_and_parcellate(paths["bold"], paths["mask"], paths["confounds"], atlas)
    seconds = time.perf_counter() - start
    return {
        "atlas": atlas_name,
        "seconds": round(seconds, 2),
        "shape": list(result.timeseries.shape),
        "status": result.qc["status"],
        "n_censored": result.qc["n_censored"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/parcellation"))
    parser.add_argument("--volumes", type=int, default=200)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.out)))
        return
    start = time.perf_counter()
    make_run(args.out, args.volumes)
    print(f"wrote the 2 mm run in {time.perf_counter() - start:.1f} s", flush=True)
    atlases = ["seitzman300"] + (["schaefer400"] if SCHAEFER400.is_file() else [])
    rows = []
    for name in atlases:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--out", str(args.out), "--one", name],
            stdout=subprocess.PIPE,
            text=True,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        output = proc.stdout.read()
        if status != 0:
            raise SystemExit(f"{name}: benchmark subprocess failed ({status})")
        row = json.loads(output.strip().splitlines()[-1])
        row["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
