"""Benchmark the ABIDE PCP import: inventory + contract files, seconds and peak memory.

Runs ``build_imported_inventory`` and ``import_timeseries`` on the shared ABIDE Preprocessed
Harvard-Oxford folder (1,102 ``.1D.gz`` files) with ``config/cohorts/abide.yaml``, writing into a
temporary folder (or ``--out``). Prints wall and CPU seconds per step (CPU seconds mind a busy
machine less), files per second, and the peak resident memory of this process and of its worker
processes. Skips with a message when ``../shared`` is absent.

python benchmarks/bench_import.py [--n-jobs 2] [--out DIR] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "abide_pcp_ho"
COHORT = REPO / "config" / "cohorts" / "abide.yaml"


def cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished workers."""
    own, workers = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def peak_rss_mb(who: int) -> float:
    """Peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if not (DATA / "rois_ho").is_dir():
        print(f"skipped: {DATA} not present (the shared ABIDE data are needed)")
        return 0

    os.chdir(REPO)  # the cohort file's paths are relative to the repository root
    from mcsp.config import load_cohort
    from mcsp.imports import build_imported_inventory, import_timeseries

    cohort = load_cohort(COHORT)
    with tempfile.TemporaryDirectory(prefix="mcsp-bench-import-") as tmp:
        out = args.out or Path(tmp) / "fmri"
        cpu_start, start = cpu_s(), time.perf_counter()
        inventory = build_imported_inventory(cohort, n_jobs=args.n_jobs)
        cpu_middle, middle = cpu_s(), time.perf_counter()
        qc = import_timeseries(cohort, inventory, out, n_jobs=args.n_jobs)
        cpu_end, end = cpu_s(), time.perf_counter()
        n_files = sum(1 for _ in Path(out).rglob("*_timeseries.tsv"))
    results = {
        "files": len(inventory.table),
        "contract_files": n_files,
        "status": qc["status"].value_counts().to_dict(),
        "n_jobs": args.n_jobs,
        "inventory_s": round(middle - start, 2),
        "import_s": round(end - middle, 2),
        "total_s": round(end - start, 2),
        "files_per_s": round(len(inventory.table) / (end - start), 1),
        "inventory_cpu_s": round(cpu_middle - cpu_start, 2),
        "import_cpu_s": round(cpu_end - cpu_middle, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "peak_rss_mb": round(peak_rss_mb(resource.RUSAGE_SELF), 1),
        "peak_rss_workers_mb": round(peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
        "cpus": len(os.sched_getaffinity(0)),
        "python": sys.version.split()[0],
    }
    for key, value in results.items():
        print(f"{key:>22}: {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
