"""Benchmark on real data: ABIDE I (PCP, Harvard-Oxford), ASD and sex from fMRI alone.

Runs the workflow with ``config/experiments/abide.yaml`` (import -> store -> self-supervised
pretraining on ABIDE -> fine-tuning and the FC + logistic-regression baseline through the store's
10 folds) in stages, timing each, then prints the AUROC table (mean ± sd over folds). Skips with a
message when ``../shared/data/abide_pcp_ho`` is absent. Usage::

    .venv/bin/python benchmarks/bench_abide.py --cores 2 [--until store|pretrain|evaluation]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "abide_pcp_ho"
CONFIG = REPO / "config" / "experiments" / "abide.yaml"
STAGES = {
    "store": "store/store.json",
    "pretrain": "pretrain/model.pt",
    "evaluation": "evaluation/summary.tsv",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--until", choices=list(STAGES), default="evaluation")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if not (DATA / "rois_ho").is_dir():
        print(f"skipped: {DATA} not present (the shared ABIDE data are needed)")
        return 0
    import yaml

    relative = Path(yaml.safe_load(CONFIG.read_text())["results_dir"])
    results = REPO / relative
    snakemake = Path(sys.executable).with_name("snakemake")
    base = [str(snakemake), "--profile", "workflow/profiles/local", "--configfile", str(CONFIG)]
    timings: dict[str, float] = {}
    for stage, target in STAGES.items():
        start = time.perf_counter()
        subprocess.run([*base, "--cores", str(args.cores), str(relative / target)], cwd=REPO,
                       check=True)  # fmt: skip
        timings[f"{stage}_s"] = round(time.perf_counter() - start, 1)
        if stage == args.until:
            break
    numbers: dict = {"cores": args.cores, **timings}
    store = json.loads((results / "store" / "store.json").read_text())
    numbers["store"] = {k: store[k] for k in ("n_subjects", "n_samples", "n_pairs") if k in store}
    if (results / "pretrain" / "summary.json").is_file():
        pre = json.loads((results / "pretrain" / "summary.json").read_text())
        numbers["pretrain"] = {
            k: pre.get(k) for k in ("steps", "seconds", "pairs_per_s", "best_loss", "device")
        }
    print(json.dumps(numbers, indent=2))
    summary = results / "evaluation" / "summary.tsv"
    if summary.is_file():
        mcsp = Path(sys.executable).with_name("mcsp")
        subprocess.run([str(mcsp), "summary", str(summary), "--metric", "auroc"], check=True)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
