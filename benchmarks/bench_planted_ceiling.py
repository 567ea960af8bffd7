"""How visible the planted effects of a synthetic cohort are: AUROC of the known features.

For a store built from a synthetic cohort, computes each planted effect's feature per subject
from the store's own samples, following the ``recover`` recipe of ``code/ground_truth.json``:

- ASD: mean Fisher-z FC between the two ``fmri_fc`` networks (fMRI windows);
- ADHD: log theta power at Fz minus mean log beta power at C3/C4 (EEG segments);
- MDD: the product of the site-z-scored FrontoParietal–DefaultMode FC and frontal alpha
  asymmetry (F4 minus F3 log alpha power), on subjects with both modalities; each factor alone too.

No model is trained: the feature and the direction are given, so each AUROC is an upper
reference for what a model trained on the same subjects can reach. With the design's signs the
MDD product cannot exceed 0.75 even without noise (half the controls share MDD's concordance).
Usage::

    .venv/bin/python benchmarks/bench_planted_ceiling.py --store results/checks/store \\
        --cohort resources/synthetic120
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def _band_power(power: np.ndarray, freqs: np.ndarray, channel: int, band: list[float]) -> float:
    keep = (freqs >= band[0]) & (freqs <= band[1])
    return float(power[channel, keep].mean())


def planted_features(store: Path, truth: dict) -> pd.DataFrame:
    """One row per subject: site, labels and the planted features (subject means over samples)."""
    meta = json.loads((store / "store.json").read_text())
    index = pd.read_csv(store / "index.tsv", sep="\t", dtype={"subject": str})
    effects = truth["effects"]
    rois = meta["roi_labels"]
    channels = meta["channels"]
    freqs = np.asarray(meta["eeg_frequencies_hz"])

    def network(name: str) -> list[int]:
        return [i for i, label in enumerate(rois) if label.split("_", 1)[-1] == name]

    asd_a, asd_b = map(network, effects["fmri_fc"]["networks"])
    mdd_a, mdd_b = map(network, effects["multimodal"]["networks"])
    theta = effects["eeg_power"]["bands"]["theta"]
    beta = effects["eeg_power"]["bands"]["beta"]
    alpha = effects["multimodal"]["bands"]["alpha"]
    fz, c3, c4, f3, f4 = (channels.index(c) for c in ("Fz", "C3", "C4", "F3", "F4"))
    rows = []
    with h5py.File(store / "samples.h5", "r") as h5:
        fc, power = h5["fmri/spatial"], h5["eeg/frequency"]
        for sample in index.itertuples():
            row = {"subject": sample.subject, "site": sample.site}
            if sample.modality == "fmri":
                m = fc[int(sample.row)]
                row["asd_fc"] = m[np.ix_(asd_a, asd_b)].mean()
                row["mdd_fc"] = m[np.ix_(mdd_a, mdd_b)].mean()
            else:
                p = power[int(sample.row)]
                row["adhd_theta_beta"] = _band_power(p, freqs, fz, theta) - 0.5 * (
                    _band_power(p, freqs, c3, beta) + _band_power(p, freqs, c4, beta)
                )
                row["mdd_asymmetry"] = _band_power(p, freqs, f4, alpha) - _band_power(
                    p, freqs, f3, alpha
                )
            rows.append(row)
    features = pd.DataFrame(rows).groupby(["subject", "site"]).mean().reset_index()
    labels = index.drop_duplicates("subject").set_index("subject")[["ADHD", "ASD", "MDD"]]
    return features.join(labels, on="subject")


def ceilings(features: pd.DataFrame) -> pd.DataFrame:
    """AUROC of each planted feature for its label (direction as planted), with subject counts."""
    both = features.dropna(subset=["mdd_fc", "mdd_asymmetry"]).copy()
    for column in ("mdd_fc", "mdd_asymmetry"):
        both[column] = both.groupby("site")[column].transform(lambda v: (v - v.mean()) / v.std())
    both["mdd_product"] = both["mdd_fc"] * both["mdd_asymmetry"]
    checks = [
        ("ASD", "asd_fc", features, -1),
        ("ADHD", "adhd_theta_beta", features, 1),
        ("MDD", "mdd_fc", both, 1),
        ("MDD", "mdd_asymmetry", both, 1),
        ("MDD", "mdd_product", both, 1),
    ]
    out = []
    for label, column, table, sign in checks:
        part = table.dropna(subset=[label, column])
        y = part[label].astype(int)
        out.append(
            {
                "label": label,
                "feature": column,
                "subjects": len(part),
                "cases": int(y.sum()),
                "auroc": round(float(roc_auc_score(y, sign * part[column])), 3),
            }
        )
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="a store of a synthetic cohort")
    parser.add_argument("--cohort", type=Path, required=True, help="the synthetic BIDS folder")
    args = parser.parse_args(argv)
    truth = json.loads((args.cohort / "code" / "ground_truth.json").read_text())
    print(ceilings(planted_features(args.store, truth)).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
