"""Benchmark on real data: ABIDE I (PCP, Harvard-Oxford), ASD and sex from fMRI alone.

Runs the workflow with ``config/experiments/abide.yaml`` (import -> store -> self-supervised
pretraining on ABIDE, one per test fold with ``pretrain.scope: train_folds`` -> fine-tuning and the
FC + logistic-regression baseline through the store's 10 folds and 3 seeds) in stages, timing
each, then prints the AUROC table and the paired differences against the baseline. ``--variant``
adds a config file of overrides on top (an ablation: its own ``results_dir``). Skips with a message
when ``../shared/data/abide_pcp_ho`` is absent. Usage::

    .venv/bin/python benchmarks/bench_abide.py --cores 2 [--variant FILE] [--until store|pretrain]
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
STAGES = ("store", "pretrain", "evaluation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--until", choices=STAGES, default="evaluation")
    parser.add_argument("--variant", type=Path, help="a config file of overrides (an ablation)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument(
        "--rerun-triggers",
        nargs="+",
        help="passed to snakemake (e.g. mtime input: keep jobs whose settings only gained keys)",
    )
    args = parser.parse_args(argv)
    if not (DATA / "rois_ho").is_dir():
        print(f"skipped: {DATA} not present (the shared ABIDE data are needed)")
        return 0
    import yaml

    configs = [CONFIG] + ([args.variant.resolve()] if args.variant else [])
    settings: dict = {}
    for path in configs:
        settings.update(yaml.safe_load(path.read_text()))
    results = REPO / settings["results_dir"]
    snakemake = Path(sys.executable).with_name("snakemake")
    flags = ["--profile", "workflow/profiles/local", "--cores", str(args.cores),
             "--configfile", *map(str, configs)]  # fmt: skip
    if args.rerun_triggers:
        flags += ["--rerun-triggers", *args.rerun_triggers]
    steps = {
        "store": [f"{settings['results_dir']}/store/store.json"],  # as the rules name it
        "pretrain": ["--until", "pretrain"],
        "evaluation": [],
    }
    timings: dict[str, float] = {}
    for stage in STAGES:
        start = time.perf_counter()
        subprocess.run([str(snakemake), *steps[stage], *flags], cwd=REPO, check=True)
        timings[f"{stage}_s"] = round(time.perf_counter() - start, 1)
        if stage == args.until:
            break
    numbers: dict = {"cores": args.cores, "configs": [str(c) for c in configs], **timings}
    store = json.loads((results / "store" / "store.json").read_text())
    numbers["store"] = {k: store[k] for k in ("n_subjects", "n_samples", "n_pairs") if k in store}
    numbers["pretrain"] = {
        str(path.parent.relative_to(results / "pretrain")): {
            k: summary.get(k) for k in ("steps", "seconds", "pairs_per_s", "best_loss", "subjects")
        }
        for path in sorted((results / "pretrain").glob("*/*/summary.json"))
        for summary in [json.loads(path.read_text())]
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
