"""Wall time of the README's two commands from a clean clone: ``make demo`` (and ``make test``).

Clones the repository's committed HEAD into ``--out``, runs ``make install`` (not timed), then
times ``make demo``; with ``--tests`` also ``make test`` (start the SLURM cluster first,
``.ci/slurm-up.sh``, for its SLURM module to run). From the demo's Snakemake log it sums the job
time per rule (from a job's start to its end, as the log stamps them to the second) and prints
the AUROC table, so a speed-up can be checked for unchanged numbers. Usage::

    .venv/bin/python benchmarks/bench_demo.py --out /tmp/bench_demo [--tests] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", re.MULTILINE)


def rule_times(log: str) -> tuple[dict[str, dict[str, float]], float]:
    """Per rule its jobs, summed and longest job time (s), and the run's wall time (s), from a
    Snakemake log (``rule NAME:`` / ``jobid: N`` at a job's start, ``Finished jobid: N`` at its
    end)."""
    marks = list(STAMP.finditer(log))
    started: dict[str, tuple[str, dt.datetime]] = {}
    times: dict[str, list[float]] = defaultdict(list)
    first = last = None
    for k, mark in enumerate(marks):
        when = dt.datetime.strptime(mark.group(1), "%a %b %d %H:%M:%S %Y")
        first, last = first or when, when
        body = log[mark.end() : marks[k + 1].start() if k + 1 < len(marks) else len(log)]
        rule = re.match(r"\s*(?:local)?(?:rule|checkpoint) (\w+):", body)
        if rule:
            job = re.search(r"jobid: (\d+)", body)
            if job:
                started[job.group(1)] = (rule.group(1), when)
            continue
        done = re.match(r"\s*Finished jobid: (\d+)", body)
        if done and done.group(1) in started:
            name, start = started.pop(done.group(1))
            times[name].append((when - start).total_seconds())
    table = {
        name: {"jobs": len(t), "sum_s": sum(t), "max_s": max(t)}
        for name, t in sorted(times.items(), key=lambda item: -sum(item[1]))
    }
    return table, (last - first).total_seconds() if first is not None else 0.0


def _timed(cmd: list[str], cwd: Path, log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=True)
    return round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the clone (replaced)")
    parser.add_argument("--tests", action="store_true", help="also time make test")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    clone = args.out.resolve() / "mcsp"
    if clone.exists():
        shutil.rmtree(clone)
    clone.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()
    numbers: dict = {"commit": commit}
    numbers["install_s"] = _timed(["make", "install"], clone, args.out / "install.log")
    numbers["demo_s"] = _timed(["make", "demo"], clone, args.out / "demo.log")
    logs = sorted((clone / ".snakemake" / "log").glob("*.snakemake.log"))
    numbers["rules"], numbers["snakemake_wall_s"] = rule_times(logs[-1].read_text())
    if args.tests:
        numbers["tests_s"] = _timed(["make", "test"], clone, args.out / "test.log")
    for name, row in numbers["rules"].items():
        jobs, total, longest = row["jobs"], row["sum_s"], row["max_s"]
        print(f"{name:20s} {jobs:4d} jobs {total:6.0f} s, longest {longest:.0f} s")
    print(json.dumps({k: v for k, v in numbers.items() if k != "rules"}, indent=2))
    summary = clone / "results" / "evaluation" / "summary.tsv"
    subprocess.run([str(clone / ".venv" / "bin" / "mcsp"), "summary", str(summary)], check=True)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
