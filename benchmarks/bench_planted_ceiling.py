"""How visible the planted effects of a synthetic cohort are: AUROC of the known features.

For a store built from a synthetic cohort, computes each planted effect's features per subject
from the store's own samples (means over a subject's fMRI windows and EEG segments) and scores
them against the effect's label with the planted direction. No model is trained: each AUROC is
an upper reference for what a model trained on the same subjects can reach. Two designs:

- contract cohorts (``format: synthetic``, ``mcsp.synth.write_contract_cohort``;
  ``results/<cohort>/ground_truth.json``): each effect's machine-readable ``recover`` recipe.
  ASD: DefaultMode-SomatomotorDorsal FC; ADHD: Fz theta minus C3/C4 beta log power; MDD:
  FrontoParietal-CinguloOpercular FC and F4 minus F3 alpha log power, each alone and the sum
  of their site z-scores (the multimodal ceiling).
- BIDS synthetic cohorts (``mcsp synth``; ``<bids>/code/ground_truth.json``): the recipe of
  that design, whose MDD feature is the product of the site-z-scored FrontoParietal-DefaultMode
  FC and frontal alpha asymmetry; it cannot exceed 0.75 even without noise (half the controls
  share MDD's concordance).

Usage::

    .venv/bin/python benchmarks/bench_planted_ceiling.py --store results/checks/store \\
        --truth results/checks/synthcheck/ground_truth.json
    .venv/bin/python benchmarks/bench_planted_ceiling.py --store results/store \\
        --cohort resources/synthetic
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def _legacy_recipes(effects: Mapping[str, Any]) -> dict[str, dict]:
    """Recipes of the BIDS synthetic design (its ``recover`` entries are prose)."""
    theta = effects["eeg_power"]["bands"]["theta"]
    beta = effects["eeg_power"]["bands"]["beta"]
    alpha = effects["multimodal"]["bands"]["alpha"]
    return {
        "fmri_fc": {
            "label": "ASD",
            "features": [
                {"name": "asd_fc", "kind": "network_fc", "sign": -1,
                 "networks": effects["fmri_fc"]["networks"]},
            ],
            "combine": "single",
        },
        "eeg_power": {
            "label": "ADHD",
            "features": [
                {"name": "adhd_theta_beta", "kind": "log_power", "sign": 1,
                 "plus": {"channels": ["Fz"], "band": theta},
                 "minus": {"channels": ["C3", "C4"], "band": beta}},
            ],
            "combine": "single",
        },
        "multimodal": {
            "label": "MDD",
            "features": [
                {"name": "mdd_fc", "kind": "network_fc", "sign": 1,
                 "networks": effects["multimodal"]["networks"]},
                {"name": "mdd_asymmetry", "kind": "log_power", "sign": 1,
                 "plus": {"channels": ["F4"], "band": alpha},
                 "minus": {"channels": ["F3"], "band": alpha}},
            ],
            "combine": "product_site_z",
        },
    }  # fmt: skip


def recipes(truth: Mapping[str, Any]) -> dict[str, dict]:
    """``{effect: {"label", "features", "combine"}}`` of a ground truth, either design."""
    effects = truth["effects"]
    found = {
        name: {"label": effect["label"], **effect["recover"]}
        for name, effect in effects.items()
        if isinstance(effect.get("recover"), Mapping)
    }
    return found or _legacy_recipes(effects)


def _log_power(p: np.ndarray, freqs: np.ndarray, channels: list[str], side: Mapping) -> float:
    keep = (freqs >= side["band"][0]) & (freqs <= side["band"][1])
    rows = [channels.index(c) for c in side["channels"]]
    return float(p[np.ix_(rows, np.flatnonzero(keep))].mean())


def planted_features(store: Path, truth: Mapping[str, Any]) -> pd.DataFrame:
    """One row per subject: site, labels and every recipe's features (subject means)."""
    meta = json.loads((store / "store.json").read_text())
    index = pd.read_csv(store / "index.tsv", sep="\t", dtype={"subject": str})
    rois, channels = meta["roi_labels"], meta["channels"]
    freqs = np.asarray(meta["eeg_frequencies_hz"])
    features = [f for recipe in recipes(truth).values() for f in recipe["features"]]

    def network(name: str) -> list[int]:
        return [i for i, label in enumerate(rois) if label.split("_", 1)[-1] == name]

    blocks = {
        f["name"]: tuple(map(network, f["networks"])) for f in features if f["kind"] == "network_fc"
    }
    rows = []
    with h5py.File(store / "samples.h5", "r") as h5:
        for sample in index.itertuples():
            row = {"subject": sample.subject, "site": sample.site}
            if sample.modality == "fmri" and blocks:
                m = h5["fmri/spatial"][int(sample.row)]
                row.update({name: m[np.ix_(a, b)].mean() for name, (a, b) in blocks.items()})
            elif sample.modality == "eeg":
                p = h5["eeg/frequency"][int(sample.row)]
                for f in features:
                    if f["kind"] == "log_power":
                        row[f["name"]] = _log_power(p, freqs, channels, f["plus"]) - _log_power(
                            p, freqs, channels, f["minus"]
                        )
            rows.append(row)
    table = pd.DataFrame(rows).groupby(["subject", "site"]).mean().reset_index()
    labels = sorted({recipe["label"] for recipe in recipes(truth).values()})
    return table.join(index.drop_duplicates("subject").set_index("subject")[labels], on="subject")


def _site_z(values: pd.Series, sites: pd.Series) -> pd.Series:
    return values.groupby(sites).transform(lambda v: (v - v.mean()) / v.std())


def ceilings(features: pd.DataFrame, truth: Mapping[str, Any]) -> pd.DataFrame:
    """AUROC of each feature (signed as planted) and of each multi-feature combination."""
    out = []

    def score(effect: str, label: str, name: str, part: pd.DataFrame, values: pd.Series) -> None:
        y = part[label].astype(int)
        out.append(
            {
                "effect": effect,
                "label": label,
                "feature": name,
                "subjects": len(part),
                "cases": int(y.sum()),
                "auroc": round(float(roc_auc_score(y, values)), 3),
            }
        )

    for effect, recipe in recipes(truth).items():
        label, specs = recipe["label"], recipe["features"]
        names = [f["name"] for f in specs]
        for f in specs:
            part = features.dropna(subset=[label, f["name"]])
            score(effect, label, f["name"], part, f["sign"] * part[f["name"]])
        if recipe["combine"] == "single":
            continue
        part = features.dropna(subset=[label, *names])
        z = [f["sign"] * _site_z(part[f["name"]], part["site"]) for f in specs]
        if recipe["combine"] == "sum_site_z":
            score(effect, label, " + ".join(names), part, sum(z))
        elif recipe["combine"] == "product_site_z":
            product = part[names[0]].copy()
            product[:] = np.prod(np.stack([v.to_numpy() for v in z]), axis=0)
            score(effect, label, " x ".join(names), part, product)
        else:
            raise ValueError(f"effect {effect}: unknown combine {recipe['combine']!r}")
    return pd.DataFrame(out)


def read_truth(truth: Path | None, cohort: Path | None) -> dict:
    """The ground truth: ``truth`` itself, else ``cohort``'s ground_truth.json (contract
    folder) or code/ground_truth.json (BIDS folder)."""
    if truth is None:
        if cohort is None:
            raise SystemExit("give --truth or --cohort")
        truth = cohort / "ground_truth.json"
        if not truth.is_file():
            truth = cohort / "code" / "ground_truth.json"
    return json.loads(truth.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="a store of a synthetic cohort")
    parser.add_argument("--truth", type=Path, help="the cohort's ground_truth.json")
    parser.add_argument(
        "--cohort", type=Path, help="the contract folder (results/<cohort>) or the BIDS folder"
    )
    args = parser.parse_args(argv)
    truth = read_truth(args.truth, args.cohort)
    print(ceilings(planted_features(args.store, truth), truth).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
