"""Benchmark pretraining: parameter count and throughput (pairs/s) of the default MCSP model.

Uses an existing store (``--store``) or synthesises one at real shapes (300 ROIs, 19 channels,
as bench_store.py does). Runs ``--steps`` optimiser steps through ``mcsp.train.pretrain`` itself
(loader start-up and the first step included) and reports pairs/s; on a GPU, peak memory.
Usage::

    .venv/bin/python benchmarks/bench_pretrain.py --subjects 40 --steps 10 --threads 2
    .venv/bin/python benchmarks/bench_pretrain.py --store results/store --device cuda
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from mcsp.config import validate
from mcsp.models import MCSP
from mcsp.parallel import tune_allocator
from mcsp.store import build_store
from mcsp.train import pretrain

sys.path.insert(0, str(Path(__file__).parent))
from bench_store import synthesise  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None, help="existing store (else synthesise)")
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-amp", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    torch.set_num_threads(args.threads)
    tune_allocator()
    work = Path(tempfile.mkdtemp(prefix="bench_pretrain_"))
    store = args.store
    if store is None:
        t = time.perf_counter()
        synthesise(work / "results" / "bench", args.subjects, 300, 150, 60.0, seed=0)
        config = validate({"cohorts": ["bench"]}, "config", "bench")
        build_store(config, work / "results", work / "store", jobs=2)
        store = work / "store"
        print(f"store of {args.subjects} subjects in {time.perf_counter() - t:.1f} s", flush=True)
    settings = {
        "pretrain": {
            "batch_size": args.batch_size,
            "device": args.device,
            "num_workers": args.workers,
            "amp": not args.no_amp,
            "val_fraction": 0.0,
            "log_every": 1,
        }
    }
    model = MCSP.from_store(store)
    result: dict = {"parameters": model.n_parameters(), "device": args.device}
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
        torch.cuda.reset_peak_memory_stats()
    settings["pretrain"]["max_steps"] = args.steps
    t = time.perf_counter()
    run = pretrain(store, work / "run", settings)
    result.update(
        {
            "batch_size": args.batch_size,
            "threads": args.threads,
            "steps": run["steps"],
            "seconds_per_step": round(run["seconds"] / run["steps"], 3),
            "pairs_per_s": run["pairs_per_s"],
            "wall_seconds_incl_model_setup": round(time.perf_counter() - t, 1),
        }
    )
    if args.device == "cuda":
        result["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
