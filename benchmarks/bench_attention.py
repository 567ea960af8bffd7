"""Benchmark the spatial encoder's attention: PyG message passing (sparse) against batched dense
attention, forward + backward of one ``GraphTransformer`` on a batch of connectivity graphs.

Graphs are thresholded correlation matrices of random time series (``mcsp.store.sparsify``,
proportional), as the store makes them. Prints seconds per step and the largest difference
between the two paths' outputs. Usage::

    .venv/bin/python benchmarks/bench_attention.py --threads 1
    .venv/bin/python benchmarks/bench_attention.py --device cuda --batch-size 64
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from mcsp.models.graph import GraphTransformer
from mcsp.store import sparsify


def graphs(batch_size: int, nodes: int, density: float, seed: int = 0) -> Batch:
    """``batch_size`` thresholded correlation graphs of ``nodes`` nodes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batch_size):
        fc = np.corrcoef(rng.standard_normal((120, nodes)).T).astype("float32")
        edge_index, weight = sparsify(fc, "proportional", density)
        out.append(
            Data(
                x=torch.from_numpy(fc),
                edge_index=torch.from_numpy(edge_index),
                edge_attr=torch.from_numpy(weight),
            )
        )
    return Batch.from_data_list(out)


def step_seconds(model: GraphTransformer, batch: Batch, repeats: int, device: str) -> float:
    """Mean seconds of a forward + backward pass (after one warm-up)."""
    for i in range(repeats + 1):
        if i == 1:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        model(batch, "fmri").sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="300:0.02,300:0.05,300:0.1,300:0.3,160:0.1,19:0.3")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for case in args.cases.split(","):
        nodes, density = int(case.split(":")[0]), float(case.split(":")[1])
        batch = graphs(args.batch_size, nodes, density).to(args.device)
        row = {"nodes": nodes, "density": density, "edges_per_graph": batch.num_edges // len(batch)}
        outputs = {}
        for attention in ("sparse", "dense"):
            torch.manual_seed(0)
            model = GraphTransformer({"fmri": nodes}, attention=attention).to(args.device)
            row[f"{attention}_s"] = round(step_seconds(model, batch, args.repeats, args.device), 4)
            with torch.no_grad():
                outputs[attention] = model.eval()(batch, "fmri")
        row["max_abs_diff"] = float((outputs["sparse"] - outputs["dense"]).abs().max())
        print(json.dumps(row), flush=True)
        rows.append(row)


if __name__ == "__main__":
    main()
