"""Linear probe: do pretrained MCSP embeddings separate the planted groups better than random ones?

For each (task, modality) the fused embedding of every sample is averaged per subject, then an
L2 logistic regression (C = 0.1, scikit-learn, standardised features) is scored by subject-level
stratified 5-fold cross-validation repeated over 20 shuffles (AUROC of the out-of-fold scores,
mean ± sd over repeats). The same is done with the same architecture at random initialisation
(several seeds). Usage::

    .venv/bin/python benchmarks/bench_probe.py --store results/store \
        --model results/pretrain/default/all/model.pt --tasks ASD:fmri ADHD:eeg
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mcsp.evaluate import labelled
from mcsp.models import MCSP
from mcsp.train import embed, load_pretrained


def subject_table(model: MCSP, store: Path, task: str, modality: str) -> tuple[np.ndarray, ...]:
    """Per-subject mean embeddings and labels of the subjects having ``task``."""
    samples, vectors = embed(model, store, modality)
    frame = pd.DataFrame(vectors, index=samples.index)
    frame["key"] = samples["cohort"] + "/" + samples["subject"]
    keep = labelled(samples, task).index
    means = frame.loc[keep].groupby("key").mean()
    labels = samples.loc[keep].groupby(frame.loc[keep, "key"])[task].first()
    return means.to_numpy(), labels.loc[means.index].astype(int).to_numpy()


def probe_auroc(x: np.ndarray, y: np.ndarray, repeats: int = 20) -> tuple[float, float]:
    """Mean and sd over repeats of the out-of-fold AUROC of a logistic-regression probe."""
    scores = []
    for r in range(repeats):
        folds = StratifiedKFold(n_splits=min(5, np.bincount(y).min()), shuffle=True, random_state=r)
        oof = np.zeros(len(y))
        for train, test in folds.split(x, y):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
            oof[test] = clf.fit(x[train], y[train]).predict_proba(x[test])[:, 1]
        scores.append(roc_auc_score(y, oof))
    return float(np.mean(scores)), float(np.std(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("results/store"))
    parser.add_argument("--model", type=Path, default=Path("results/pretrain/default/all/model.pt"))
    parser.add_argument("--tasks", nargs="+", default=["ASD:fmri", "ADHD:eeg"])
    parser.add_argument("--random-seeds", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(2)
    pretrained = load_pretrained(args.model)
    rows = []
    for spec in args.tasks:
        task, modality = spec.split(":")
        x, y = subject_table(pretrained, args.store, task, modality)
        mean, sd = probe_auroc(x, y)
        rows.append({"task": task, "modality": modality, "weights": "pretrained",
                     "subjects": len(y), "positives": int(y.sum()), "auroc": round(mean, 3),
                     "sd": round(sd, 3)})  # fmt: skip
        for seed in range(args.random_seeds):
            torch.manual_seed(seed)
            random = MCSP(pretrained.shapes, pretrained.settings).eval()
            x, y = subject_table(random, args.store, task, modality)
            mean, sd = probe_auroc(x, y)
            rows.append({"task": task, "modality": modality, "weights": f"random seed {seed}",
                         "subjects": len(y), "positives": int(y.sum()), "auroc": round(mean, 3),
                         "sd": round(sd, 3)})  # fmt: skip
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
