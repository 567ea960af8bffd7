"""Benchmark the workflow's DAG at cohort scale: ``mcsp cohort check`` and ``snakemake -n``.

A BIDS cohort of N subjects is laid out cheaply: a 2-subject synthetic cohort (``mcsp synth``) is
generated once, and every subject of the large cohort is a folder of symbolic links to one of its
subjects' files under a new name (raw BOLD + EEG, fMRIPrep derivatives, participants.tsv). The
inventory is written by ``mcsp cohort check`` (timed), then ``snakemake -n`` (timed) plans the
whole workflow from it: both modalities, store, pretraining and evaluation. Usage::

    .venv/bin/python benchmarks/bench_dag.py --subjects 200 1000 5000 --out /tmp/bench_dag
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _link_subject(template: Path, source: str, target: str, out: Path) -> None:
    """Links of every file of subject ``source`` under ``template`` as subject ``target``."""
    for path in template.rglob(f"sub-{source}*"):
        if not path.is_file():
            continue
        rel = path.relative_to(template)
        if rel.parts[0] == "derivatives":
            continue  # linked from the fMRIPrep folder itself
        new = out / Path(str(rel).replace(f"sub-{source}", f"sub-{target}"))
        new.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path.resolve(), new)


def make_cohort(template: Path, n: int, out: Path) -> Path:
    """A BIDS folder of ``n`` subjects linked to the 2 subjects of ``template``."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in ("dataset_description.json", "participants.json", "README"):
        if (template / name).is_file():
            shutil.copy(template / name, out / name)
    deriv = template / "derivatives" / "fmriprep"
    (out / "derivatives" / "fmriprep").mkdir(parents=True)
    shutil.copy(deriv / "dataset_description.json", out / "derivatives" / "fmriprep")
    rows = (template / "participants.tsv").read_text().splitlines()
    header, body = rows[0], rows[1:]
    sources = [row.split("\t")[0].removeprefix("sub-") for row in body]
    lines = [header]
    for i in range(n):
        source = sources[i % len(sources)]
        label = f"{i + 1:05d}"
        _link_subject(template, source, label, out)
        _link_subject(deriv, source, label, out / "derivatives" / "fmriprep")
        row = body[i % len(body)].split("\t")
        row[0] = f"sub-{label}"
        lines.append("\t".join(row))
    (out / "participants.tsv").write_text("\n".join(lines) + "\n")
    return out


def _timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - start, result


def measure(n: int, template: Path, work: Path) -> dict:
    """Seconds of ``mcsp cohort check`` and ``snakemake -n`` on an ``n``-subject cohort."""
    root = work / f"n{n}"
    bids = make_cohort(template, n, root / "bids")
    config_dir = root / "config"
    if config_dir.exists():
        shutil.rmtree(config_dir)
    shutil.copytree(REPO / "config", config_dir)
    cohort = yaml.safe_load((config_dir / "cohorts" / "synthetic.yaml").read_text())
    cohort.update(name="big", bids_root=str(bids))
    (config_dir / "cohorts" / "big.yaml").write_text(yaml.safe_dump(cohort))
    config = yaml.safe_load((config_dir / "config.yaml").read_text())
    config.update(
        cohorts=["big"],
        cohorts_dir=str(config_dir / "cohorts"),
        results_dir=str(root / "results"),
        work_dir=str(root / "work"),
    )
    config["synth"]["activate"] = False
    (config_dir / "config.yaml").write_text(yaml.safe_dump(config))
    inventory = root / "results" / "big" / "inventory.tsv"
    check_s, check = _timed(
        [
            str(BIN / "mcsp"),
            "cohort",
            "check",
            str(config_dir / "cohorts" / "big.yaml"),
            "--out",
            str(inventory),
        ],  # fmt: skip
        REPO,
    )
    if check.returncode != 0:
        raise SystemExit(f"cohort check failed:\n{check.stderr[-3000:]}")
    snakemake = [
        *(str(BIN / "snakemake"), "-s", str(REPO / "Snakefile")),
        *("--configfile", str(config_dir / "config.yaml"), "-n", "--quiet", "rules"),
        *("--cores", "2"),
    ]
    # the inventory checkpoint counts as done: its output exists and is newer than its inputs
    os.utime(inventory)
    dag_s, dag = _timed(snakemake, root)
    if dag.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{dag.stderr[-3000:]}")
    jobs = re.search(r"^total\s+(\d+)", dag.stdout + dag.stderr, re.MULTILINE)
    return {
        "subjects": n,
        "cohort_check_s": round(check_s, 1),
        "dry_run_s": round(dag_s, 1),
        "jobs": int(jobs.group(1)) if jobs else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_dag"))
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    template = args.out / "template"
    if not (template / "participants.tsv").is_file():
        subprocess.run(
            [
                str(BIN / "mcsp"),
                "synth",
                "--out",
                str(template),
                "--subjects",
                "2",
                "--eeg-duration",
                "5",
                "--fmri-volumes",
                "30",
                "--voxel-size",
                "8",
            ],  # fmt: skip
            check=True,
        )
    rows = [measure(n, template, args.out) for n in args.subjects]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
