"""Benchmark the synthetic cohort generator: wall time, time per subject, disk size, peak memory.

python benchmarks/bench_synth.py --subjects 30 --jobs 2 --out benchmarks/out/synth30
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path

from mcsp.synth import generate_cohort


def folder_bytes(root: Path) -> dict[str, int]:
    """Bytes on disk under ``root``: total, EEG (raw), fMRI (derivatives) and the rest."""
    sizes = {"total": 0, "eeg": 0, "fmri": 0}
    for path in root.rglob("*"):
        if path.is_file():
            size = path.stat().st_size
            sizes["total"] += size
            if "/eeg/" in path.as_posix():
                sizes["eeg"] += size
            elif "derivatives" in path.parts:
                sizes["fmri"] += size
    sizes["other"] = sizes["total"] - sizes["eeg"] - sizes["fmri"]
    return sizes


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its largest child (Linux: ru_maxrss in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"main": own, "largest_child": children}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True, help="cohort folder (replaced)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--eeg-duration", type=float, default=60.0)
    parser.add_argument("--fmri-volumes", type=int, default=150)
    parser.add_argument("--voxel-size", type=int, default=4)
    parser.add_argument("--clean", action="store_true", help="delete the cohort afterwards")
    args = parser.parse_args()

    start = time.perf_counter()
    truth = generate_cohort(
        args.out,
        args.subjects,
        args.seed,
        eeg_duration_s=args.eeg_duration,
        fmri_volumes=args.fmri_volumes,
        fmri_voxel_size_mm=args.voxel_size,
        n_jobs=args.jobs,
    )
    seconds = time.perf_counter() - start
    sizes = folder_bytes(args.out)
    memory = peak_rss_mb()
    runs = [r for s in truth["subjects"] for r in s["recordings"]]
    result = {
        "subjects": args.subjects,
        "jobs": args.jobs,
        "cpus": os.cpu_count(),
        "eeg_recordings": sum(r["modality"] == "eeg" for r in runs),
        "fmri_runs": sum(r["modality"] == "fmri" for r in runs),
        "seconds": round(seconds, 2),
        "seconds_per_subject": round(seconds / args.subjects, 3),
        "disk_mb": {k: round(v / 2**20, 1) for k, v in sizes.items()},
        "disk_mb_per_subject": round(sizes["total"] / 2**20 / args.subjects, 2),
        "peak_rss_mb": {k: round(v, 1) for k, v in memory.items()},
    }
    print(json.dumps(result, indent=2))
    if args.clean:
        shutil.rmtree(args.out)


if __name__ == "__main__":
    main()
