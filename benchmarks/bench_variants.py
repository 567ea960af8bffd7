"""Screen fine-tuning variants on a few folds of a store: test and validation AUROC per fold.

Each variant is a name and a JSON object of ``finetune`` settings (``mode`` included); every
variant runs :func:`mcsp.finetune.finetune` on the same folds and seeds, in one process, and the
script prints one row per variant: the subject-level AUROC of each test fold, their mean, and the
mean validation AUROC of the selected epochs (the number a choice between variants may look at;
the test folds' numbers are reported, never used to choose). Usage::

    .venv/bin/python benchmarks/bench_variants.py --store results/abide/store \\
        --pretrained work/screen/pretrain/model.pt --task ASD --folds 0 1 2 3 \\
        --variant 'pretrained={"mode": "full"}' --variant 'refit={"mode": "full", "refit": true}' \\
        --variant 'scratch_spatial={"mode": "scratch", "domains": ["spatial"]}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mcsp.evaluate import auroc, subject_scores
from mcsp.finetune import finetune


def _variant(text: str) -> tuple[str, dict]:
    name, _, settings = text.partition("=")
    if not name or not settings:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: write NAME=JSON")
    return name, json.loads(settings)


def screen(
    store: Path,
    pretrained: Path | None,
    task: str,
    folds: list[int],
    seeds: list[int],
    variants: list[tuple[str, dict]],
) -> pd.DataFrame:
    """One row per variant, fold and seed: test AUROC, selected validation AUROC, seconds."""
    rows = []
    for name, settings in variants:
        for fold in folds:
            for seed in seeds:
                start = time.perf_counter()
                out = finetune(
                    store,
                    task,
                    fold,
                    seed,
                    pretrained=pretrained,
                    settings={"device": "cpu", **settings},
                )
                subjects = subject_scores(out)
                rows.append(
                    {
                        "variant": name,
                        "fold": fold,
                        "seed": seed,
                        "test_auroc": auroc(subjects["y"], subjects["score"]),
                        "val_auroc": out.attrs["selection"]["best"],
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--pretrained", type=Path, default=None, help="model.pt (full, linear)")
    parser.add_argument("--task", default="ASD")
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variant", type=_variant, action="append", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write every row to this TSV")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    table = screen(args.store, args.pretrained, args.task, args.folds, args.seeds, args.variant)
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)
    per_fold = table.pivot_table(index="variant", columns="fold", values="test_auroc", sort=False)
    per_fold.columns = [f"fold {f}" for f in per_fold.columns]
    grouped = table.groupby("variant", sort=False)
    per_fold["test mean"] = grouped["test_auroc"].mean()
    per_fold["val mean"] = grouped["val_auroc"].mean()
    per_fold["minutes"] = (grouped["seconds"].sum() / 60).round(1)
    print(per_fold.round(3).to_string())
    return 0 if np.isfinite(table["test_auroc"]).all() else 1


if __name__ == "__main__":
    sys.exit(main())
