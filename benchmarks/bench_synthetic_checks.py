"""The synthetic checks of config/experiments/synthetic_checks.yaml: do they pass?

Reads the evaluation's ``metrics.tsv`` and, for each check, pairs the two (experiment, model)
runs on the same test fold and seed:

- MDD: fused MCSP (experiment ``fused``) minus MCSP on fMRI alone (``fmri_only``) and on EEG
  alone (``eeg_only``);
- 20% of the labels: pretrained MCSP minus the same network from scratch (experiments
  ``few_labels_fmri``, task ASD, and ``few_labels_eeg``, task ADHD).

For each it prints both AUROCs (mean ± sd over folds × seeds, and of the pooled test folds, mean
over seeds), the paired difference ``delta`` (mean ± sd over folds × seeds: the sd is the
fold-to-fold / seed noise of the difference), ``ratio`` = mean / sd, the pooled difference, and
``pass``: the mean difference is positive and larger than its noise (ratio > 1), and the pooled
difference is positive for every seed. The design aims at ratio >= 2. Usage::

    .venv/bin/python benchmarks/bench_synthetic_checks.py results/checks/evaluation/metrics.tsv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

# (name, task, (experiment, model) checked, (experiment, model) it must beat)
CHECKS = [
    ("MDD: fused > fMRI alone", "MDD", ("fused", "mcsp"), ("fmri_only", "mcsp")),
    ("MDD: fused > EEG alone", "MDD", ("fused", "mcsp"), ("eeg_only", "mcsp")),
    ("ASD, 20% labels: pretrained > scratch", "ASD", ("few_labels_fmri", "mcsp"),
     ("few_labels_fmri", "mcsp_scratch")),
    ("ADHD, 20% labels: pretrained > scratch", "ADHD", ("few_labels_eeg", "mcsp"),
     ("few_labels_eeg", "mcsp_scratch")),
]  # fmt: skip


def _runs(metrics: pd.DataFrame, task: str, experiment: str, model: str) -> pd.DataFrame:
    part = metrics[
        (metrics["metric"] == "auroc")
        & (metrics["task"] == task)
        & (metrics["experiment"] == experiment)
        & (metrics["model"] == model)
        & (metrics["seed"].astype(str) != "ens")
    ]
    return part.set_index(["fold", "seed"])["value"]


def check_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per check: both models' AUROCs, the paired difference, its noise and the verdict."""
    rows = []
    for name, task, (exp_a, model_a), (exp_b, model_b) in CHECKS:
        a, b = _runs(metrics, task, exp_a, model_a), _runs(metrics, task, exp_b, model_b)
        if a.empty or b.empty:
            continue
        folds = a.index.get_level_values("fold") != "pooled"
        per_a, per_b = a[folds], b[b.index.get_level_values("fold") != "pooled"]
        delta = (per_a - per_b).dropna()
        pooled = (a[~folds] - b[b.index.get_level_values("fold") == "pooled"]).dropna()
        ratio = delta.mean() / delta.std() if delta.std() > 0 else float("inf")
        rows.append(
            {
                "check": name,
                "model": f"{exp_a}/{model_a}",
                "auroc": f"{per_a.mean():.3f} ± {per_a.std():.3f}",
                "pooled": round(a[~folds].mean(), 3),
                "versus": f"{exp_b}/{model_b}",
                "auroc_versus": f"{per_b.mean():.3f} ± {per_b.std():.3f}",
                "pooled_versus": round(b[b.index.get_level_values("fold") == "pooled"].mean(), 3),
                "delta": f"{delta.mean():+.3f} ± {delta.std():.3f}",
                "ratio": round(ratio, 2),
                "runs": len(delta),
                "delta_pooled": round(pooled.mean(), 3),
                "pass": bool(delta.mean() > 0 and ratio > 1 and (pooled > 0).all()),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "metrics",
        type=Path,
        nargs="?",
        default=Path("results/checks/evaluation/metrics.tsv"),
        help="the evaluation's metrics.tsv",
    )
    args = parser.parse_args(argv)
    metrics = pd.read_csv(args.metrics, sep="\t", dtype={"fold": str, "seed": str})
    table = check_table(metrics)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False))
    return 0 if len(table) and table["pass"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
