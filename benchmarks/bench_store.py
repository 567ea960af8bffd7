"""Benchmark the dataset store: build time and peak memory for N subjects, then loader speed.

Contract files (time series TSVs + sidecars, clean EEG .fif files, QC tables, inventory) are
synthesised directly (random data, no workflow run), then ``build_store`` reads them as the
workflow's would. Usage::

    .venv/bin/python benchmarks/bench_store.py --subjects 100 --out /tmp/bench_store --jobs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import torch

from mcsp.bids import HEAD_COLUMNS
from mcsp.config import validate
from mcsp.eeg import CHANNEL_SETS
from mcsp.eeg import QC_COLUMNS as EEG_QC
from mcsp.fmri import QC_COLUMNS as FMRI_QC
from mcsp.store import PairDataset, build_store, collate_pairs


def synthesise(folder: Path, n: int, rois: int, volumes: int, eeg_s: float, seed: int) -> None:
    """Contract files of cohort ``bench`` in ``folder``: one fMRI run, eyes open + closed EEG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    channels = CHANNEL_SETS["1020_19"]
    info = mne.create_info(channels, 256.0, "eeg")
    header = "\t".join(f"roi{i:03d}" for i in range(rois))
    inventory, fmri, eeg = [], [], []
    for s in range(n):
        sub = f"{s:04d}"
        base = {"cohort": "bench", "subject": sub, "session": "1", "status": "ok", "reason": ""}
        labels = {"site": f"S{s % 5}", "ASD": int(rng.integers(0, 2))}
        path = folder / f"sub-{sub}_task-rest_atlas-bench_timeseries.tsv"
        np.savetxt(path, rng.normal(size=(volumes, rois)), fmt="%.6g", delimiter="\t",
                   header=header, comments="")  # fmt: skip
        path.with_suffix(".json").write_text(json.dumps({"RepetitionTime": 2.0}))
        fmri.append({**base, "task": "rest", "atlas": "bench", "timeseries": str(path)})
        inventory.append({**base, **labels, "modality": "fmri", "task": "rest"})
        for task in ("eyesopen", "eyesclosed"):
            raw = mne.io.RawArray(
                rng.normal(size=(19, int(eeg_s * 256))) * 1e-5, info, verbose="error"
            )
            raw.set_annotations(mne.Annotations([eeg_s / 2], [1.0], ["BAD_segment"]))
            fif = folder / f"sub-{sub}_task-{task}_desc-clean_eeg.fif"
            raw.save(fif, overwrite=True, verbose="error")
            eeg.append({**base, "task": task, "clean_file": str(fif), "sfreq": 256.0})
            inventory.append({**base, **labels, "modality": "eeg", "task": task})
    pd.DataFrame(inventory).reindex(columns=HEAD_COLUMNS + ["ASD", "status", "reason"]).to_csv(
        folder / "inventory.tsv", sep="\t", index=False, na_rep="n/a"
    )
    for name, rows, columns in (("fmri", fmri, FMRI_QC), ("eeg", eeg, EEG_QC)):
        pd.DataFrame(rows).reindex(columns=columns).to_csv(
            folder / f"{name}_qc.tsv", sep="\t", index=False, na_rep="n/a"
        )


def peak_mb() -> tuple[float, float]:
    """Peak resident memory (MiB) of this process and of its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=100)
    parser.add_argument("--rois", type=int, default=300)
    parser.add_argument("--volumes", type=int, default=150)
    parser.add_argument("--eeg-seconds", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-batches", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_store"))
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    t = time.perf_counter()
    synthesise(args.out / "results" / "bench", args.subjects, args.rois, args.volumes,
               args.eeg_seconds, seed=0)  # fmt: skip
    synth_s = time.perf_counter() - t
    before = peak_mb()

    config = validate({"cohorts": ["bench"], "study": {"stratify_label": "ASD"}}, "config", "bench")
    t = time.perf_counter()
    summary = build_store(config, args.out / "results", args.out / "store", jobs=args.jobs)
    build_s = time.perf_counter() - t
    own, children = peak_mb()
    size_mb = (args.out / "store" / "samples.h5").stat().st_size / 2**20

    torch.set_num_threads(1)
    dataset = PairDataset(args.out / "store")
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        collate_fn=collate_pairs,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(0),
    )
    n, t = 0, time.perf_counter()
    for k, batch in enumerate(loader):
        if k == 0:
            first_s, t = time.perf_counter() - t, time.perf_counter()
            continue
        n += len(batch["pair_id"])
        if k >= args.max_batches:
            break
    load_s = time.perf_counter() - t

    result = {
        "subjects": args.subjects,
        "rois": args.rois,
        "jobs": args.jobs,
        "synthesise_s": round(synth_s, 1),
        "build_s": round(build_s, 1),
        "build_s_per_subject": round(build_s / args.subjects, 3),
        "peak_rss_main_mb": round(own, 0),
        "peak_rss_worker_mb": round(children, 0),
        "peak_rss_before_build_mb": round(before[0], 0),
        "samples": summary["n_samples"],
        "pairs": summary["n_pairs"],
        "samples_h5_mb": round(size_mb, 1),
        "loader_workers": args.workers,
        "loader_first_batch_s": round(first_s, 2),
        "loader_pairs": n,
        "loader_pairs_per_s": round(n / load_s, 1),
        "loader_samples_per_s": round(2 * n / load_s, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
