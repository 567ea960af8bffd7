"""Benchmark pretraining throughput on a GPU: the loader's batches against resident samples.

For each store, times the pretraining step of ``mcsp.train`` (``batch_loss``, backward, gradient
clipping, AdamW) on batches from the DataLoader (``pretrain.resident: false``, ``--workers``
processes) and from :class:`mcsp.resident.ResidentPairs` (``resident: true``) at several batch
sizes, after ``--warmup`` steps, and samples the GPU's utilisation meanwhile (NVML). Then runs
``mcsp.train.pretrain`` itself end to end both ways (validation and checkpoints included).

A store is a real one (``--store``) or one shaped like a real one (``--like``: a store folder's
``store.json``, ``index.tsv`` and ``pairs.tsv``; the samples are drawn at random with the same
shapes, rows and pairs, so only the file of tables has to travel). Usage::

    python benchmarks/bench_gpu.py --like results/store --like results/abide/store --json out.json
    .venv/bin/python benchmarks/bench_gpu.py --store results/store --device cpu --batch-sizes 32
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from mcsp.models import MCSP
from mcsp.resident import ResidentPairs
from mcsp.store import PairDataset, read_store_table
from mcsp.train import (
    Views,
    _loader,
    batch_loss,
    epoch_batches,
    pretrain,
    step_seed,
    training_settings,
)

STORE_TABLES = ("store.json", "index.tsv", "pairs.tsv")
MODES = ["loader", "resident"]


def store_like(tables: Path, out: Path, seed: int = 0) -> Path:
    """A store with the tables of ``tables`` and random samples of its shapes."""
    out.mkdir(parents=True)
    for name in STORE_TABLES:
        shutil.copy(tables / name, out / name)
    meta = json.loads((tables / "store.json").read_text())
    index = read_store_table(tables, "index")
    rng = np.random.default_rng(seed)
    with h5py.File(out / "samples.h5", "w") as h5:
        for key, shape in meta["shapes"].items():
            modality = key.split("/")[0]
            rows = int((index["modality"] == modality).sum())
            if "spatial" in key:
                n = shape[0]
                data = rng.normal(scale=0.3, size=(rows, n, n)).astype(np.float32)
                data = np.tanh(data + data.transpose(0, 2, 1))
                data[:, np.arange(n), np.arange(n)] = 0.0
            else:
                data = rng.normal(size=(rows, *shape)).astype(np.float32)
            h5.create_dataset(key, data=data, chunks=(1, *shape))
    return out


class Utilisation:
    """Mean GPU utilisation (%) sampled through NVML every ``period`` seconds."""

    def __init__(self, device: torch.device, period: float = 0.02) -> None:
        self.device, self.period, self.values = device, period, []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Utilisation:
        if self.device.type == "cuda":
            try:
                torch.cuda.utilization(self.device)
            except Exception as error:  # noqa: BLE001 - no NVML: report None
                logging.warning("no GPU utilisation: %s", error)
                return self
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.period):
            self.values.append(torch.cuda.utilization(self.device))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return round(float(np.mean(self.values)), 1) if self.values else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_step(
    views: Views,
    optimiser: torch.optim.Optimizer,
    batch: dict[str, Any],
    settings: dict[str, Any],
    device: torch.device,
    step: int,
) -> None:
    """One pretraining step as ``mcsp.train.pretrain`` takes it (clipping at 1.0)."""
    loss, _ = batch_loss(views, batch, settings, device, step_seed(0, step))
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(views.parameters(), 1.0)
    optimiser.step()


def step_rate(
    store: Path,
    mode: str,
    batch_size: int,
    steps: int,
    warmup: int,
    device: torch.device,
    workers: int,
    amp: bool,
) -> dict[str, Any]:
    """Pairs per second of ``steps`` pretraining steps after ``warmup`` ones."""
    config = {"pretrain": {"batch_size": batch_size, "amp": amp}}
    settings = training_settings(config)
    train_cfg = settings["pretrain"]
    dataset = PairDataset(store)
    torch.manual_seed(0)
    views = Views(MCSP(dataset.meta["shapes"], settings["model"])).to(device)
    optimiser = torch.optim.AdamW(views.parameters(), lr=1e-4)
    schedule: list[list[int]] = []
    epoch = 0
    while len(schedule) < warmup + steps:
        schedule += epoch_batches(len(dataset), batch_size, 0, epoch)
        epoch += 1
    schedule = schedule[: warmup + steps]
    t = time.perf_counter()
    if mode == "resident":
        resident = ResidentPairs(dataset, device)
        _sync(device)
        batches = resident.batches(schedule)
    else:
        batches = _loader(dataset, schedule, workers, 0)
    setup = time.perf_counter() - t
    pairs, monitor = 0, Utilisation(device)
    for k, batch in enumerate(batches):
        if k == warmup:
            _sync(device)
            t = time.perf_counter()
            monitor.__enter__()
        _train_step(views, optimiser, batch, train_cfg, device, k)
        if k >= warmup:
            pairs += len(batch["pair_id"])
    _sync(device)
    seconds = time.perf_counter() - t
    monitor.__exit__()
    return {
        "mode": mode,
        "batch_size": batch_size,
        "steps": steps,
        "setup_s": round(setup, 2),
        "seconds_per_step": round(seconds / steps, 4),
        "pairs_per_s": round(pairs / seconds, 1),
        "gpu_utilisation_pct": monitor.mean,
    }


def batch_rate(store: Path, mode: str, batch_size: int, n: int, device, workers: int) -> float:
    """Batches per second the data path alone delivers (no model)."""
    dataset = PairDataset(store)
    schedule = (epoch_batches(len(dataset), batch_size, 0, 0) * n)[:n]
    if mode == "resident":
        batches = ResidentPairs(dataset, device).batches(schedule)
    else:
        batches = _loader(dataset, schedule, workers, 0)
    next(batches)
    t = time.perf_counter()
    count = 1 + sum(1 for _ in batches)
    _sync(device)
    return round((count - 1) / (time.perf_counter() - t), 1)


def profile(store: Path, device: torch.device, path: Path, steps: int = 10) -> None:
    """``torch.profiler`` table of resident pretraining steps at batch 32 (after 3 warm-ups)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    settings = training_settings({})
    dataset = PairDataset(store)
    views = Views(MCSP(dataset.meta["shapes"], settings["model"])).to(device)
    optimiser = torch.optim.AdamW(views.parameters(), lr=1e-4)
    resident = ResidentPairs(dataset, device)
    schedule = (epoch_batches(len(dataset), 32, 0, 0) * (steps + 3))[: steps + 3]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for k, batch in enumerate(resident.batches(schedule)):
            _train_step(views, optimiser, batch, settings["pretrain"], device, k)
        _sync(device)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    tables = [
        prof.key_averages().table(sort_by=key, row_limit=30) for key in (sort, "cpu_time_total")
    ]
    path.write_text("\n\n".join(tables))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, action="append", default=[])
    parser.add_argument("--like", type=Path, action="append", default=[])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--loader-steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--pretrain-steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--modes", nargs="+", choices=["loader", "resident"], default=MODES)
    parser.add_argument("--pretrain-batch-sizes", type=int, nargs="+", default=[32])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--profile", type=Path, default=None, help="profile table of the first store"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(args.device)
    work = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    stores = {p.name if p.name != "store" else p.parent.name: p for p in args.store}
    for k, tables in enumerate(args.like):
        name = tables.name if tables.name != "store" else tables.parent.name
        t = time.perf_counter()
        stores[f"{name}-like"] = store_like(tables, work / f"like{k}")
        print(f"{name}-like store written in {time.perf_counter() - t:.1f} s", flush=True)
    results: dict[str, Any] = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    for name, store in stores.items():
        dataset = PairDataset(store)
        entry: dict[str, Any] = {
            "pairs": len(dataset),
            "shapes": dataset.meta["shapes"],
            "steps": [],
        }
        entry["batches_per_s_b32"] = {
            mode: batch_rate(store, mode, 32, 30, device, args.workers) for mode in args.modes
        }
        print(name, entry["batches_per_s_b32"], flush=True)
        runs = [("loader", 32, args.loader_steps, True)] if "loader" in args.modes else []
        if "resident" in args.modes:
            runs += [("resident", b, args.steps, True) for b in args.batch_sizes]
            runs += [("resident", 32, args.steps, False)]
        for mode, batch_size, steps, amp in runs:
            if batch_size > len(dataset):
                continue
            row = step_rate(store, mode, batch_size, steps, args.warmup, device, args.workers, amp)
            row["amp"] = amp and device.type == "cuda"
            entry["steps"].append(row)
            print(name, json.dumps(row), flush=True)
        for mode in args.modes:
            for batch_size in args.pretrain_batch_sizes:
                config = {
                    "pretrain": {
                        "max_steps": args.pretrain_steps,
                        "batch_size": batch_size,
                        "resident": mode == "resident",
                        "num_workers": args.workers,
                        "device": args.device,
                    }
                }
                t = time.perf_counter()
                out = work / f"run-{name}-{mode}-{batch_size}"
                summary = pretrain(store, out, config, resume=False)
                summary["wall_s"] = round(time.perf_counter() - t, 1)
                summary["batch_size"] = batch_size
                entry[f"pretrain_{mode}_b{batch_size}"] = summary
                print(name, mode, json.dumps(summary), flush=True)
        results[name] = entry
        if args.profile:
            profile(store, device, args.profile.with_name(f"{args.profile.stem}_{name}.txt"))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
