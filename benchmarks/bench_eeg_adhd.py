"""Benchmark on real EEG with labels: ADHD vs control children (Nasrabadi et al., 2020).

Converts ``../shared/data/eeg_adhd_children`` (one MATLAB file per child: samples x 19 channels,
128 Hz, recorded during a visual attention task) into a BIDS dataset with mne-bids, as a user
with such files would, then runs the workflow with ``config/experiments/eeg_adhd.yaml``
(inventory -> EEG cleaning -> QC -> store -> pretraining -> evaluation) in stages, timing each,
and prints the AUROC table (mean ± sd over 10 subject-level folds x 3 seeds, and pooled).

The files do not state their units (raw amplifier counts); they are taken as microvolts (x 1e-6
to MNE's volts). Channel names come from the folder's ``EEG_electrode_location_label.ced``
(its ``Number`` column is the data column), positions from MNE's ``colin27_1020`` montage.
Mains frequency 50 Hz (recorded in Iran). Subject labels are the file names (``v10p``), made
alphanumeric; ``participants.tsv`` gets ``diagnosis`` (ADHD / control) and one ``site``.
Conversion is skipped when ``code/conversion.json`` says it is complete. Skips with a message
when the shared data are absent. Usage::

    .venv/bin/python benchmarks/bench_eeg_adhd.py --cores 1 [--until convert|qc|store|...]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "eeg_adhd_children"
CONFIG = REPO / "config" / "experiments" / "eeg_adhd.yaml"
GROUPS = {"ADHD": "ADHD", "CONTROL": "control"}
TASK = "attention"
SFREQ = 128.0
LINE_FREQ = 50.0
SITE = "nasrabadi2020"
MARKER = Path("code") / "conversion.json"


def channel_names(ced: Path) -> list[str]:
    """Channel labels in data-column order, from an EEGLAB ``.ced`` file's Number column."""
    rows = [line.split() for line in ced.read_text().splitlines()[1:] if line.strip()]
    names = {int(row[0]): row[1] for row in rows}
    return [names[k] for k in sorted(names)]


def subject_label(stem: str) -> str:
    """A BIDS-safe (alphanumeric) subject label from a file name stem."""
    label = re.sub(r"[^A-Za-z0-9]", "", stem)
    if not label:
        raise ValueError(f"file name {stem!r} gives an empty subject label")
    return label


def recordings(source: Path) -> dict[str, tuple[Path, str]]:
    """{subject label: (MATLAB file, diagnosis)} of every child; labels must be unique."""
    out: dict[str, tuple[Path, str]] = {}
    for folder, diagnosis in GROUPS.items():
        for path in sorted((source / folder).glob("*.mat")):
            label = subject_label(path.stem)
            if label in out:
                raise ValueError(f"{path} and {out[label][0]} give the same subject {label}")
            out[label] = (path, diagnosis)
    return out


def load_raw(path: Path, names: list[str]):
    """The child's recording as an MNE Raw (counts taken as µV), with 10-20 positions."""
    import mne
    import numpy as np
    from scipy.io import loadmat

    variables = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    if len(variables) != 1:
        raise ValueError(f"{path}: expected one variable, found {sorted(variables)}")
    data = np.asarray(next(iter(variables.values())), dtype=float)
    if data.ndim != 2 or data.shape[1] != len(names):
        raise ValueError(f"{path}: expected samples x {len(names)}, got {data.shape}")
    info = mne.create_info(names, SFREQ, "eeg")
    raw = mne.io.RawArray(data.T * 1e-6, info, verbose=False)
    raw.set_montage("colin27_1020", verbose=False)
    raw.info["line_freq"] = LINE_FREQ
    return raw


def conversion_complete(root: Path, subjects: list[str]) -> bool:
    """True when ``root`` holds a finished conversion of exactly ``subjects``."""
    marker = root / MARKER
    if not marker.is_file():
        return False
    done = json.loads(marker.read_text()).get("subjects")
    return done == subjects and all(
        (root / f"sub-{s}" / "eeg" / f"sub-{s}_task-{TASK}_eeg.vhdr").is_file() for s in subjects
    )


def convert(source: Path, root: Path) -> int:
    """Write ``source`` as a BIDS dataset at ``root`` (skipped when complete); return subjects."""
    import mne_bids
    import pandas as pd

    children = recordings(source)
    subjects = sorted(children)
    if conversion_complete(root, subjects):
        print(f"BIDS dataset {root} is complete ({len(subjects)} subjects): conversion skipped")
        return len(subjects)
    names = channel_names(source / "EEG_electrode_location_label.ced")
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    for n, subject in enumerate(subjects, 1):
        path, _ = children[subject]
        raw = load_raw(path, names)
        bids_path = mne_bids.BIDSPath(subject=subject, task=TASK, datatype="eeg", root=root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mne_bids.write_raw_bids(
                raw, bids_path, format="BrainVision", allow_preload=True, overwrite=True,
                verbose=False,
            )  # fmt: skip
        print(f"  [{n}/{len(subjects)}] sub-{subject} ({raw.times[-1]:.0f} s)", flush=True)
    mne_bids.make_dataset_description(
        path=root,
        name="EEG data for ADHD / control children (Nasrabadi et al., IEEE DataPort, 2020)",
        overwrite=True,
    )
    table = pd.read_csv(root / "participants.tsv", sep="\t", dtype=str)
    table["diagnosis"] = [children[p.removeprefix("sub-")][1] for p in table["participant_id"]]
    table["site"] = SITE
    table.to_csv(root / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    sidecar = root / "participants.json"
    described = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    described["diagnosis"] = {
        "Description": "Group, from the source folder (ADHD or CONTROL)",
        "Levels": {"ADHD": "attention-deficit/hyperactivity disorder", "control": "control"},
    }
    described["site"] = {"Description": "Acquisition site (one site)"}
    sidecar.write_text(json.dumps(described, indent=4) + "\n")
    (root / MARKER).parent.mkdir(exist_ok=True)
    (root / MARKER).write_text(
        json.dumps({"source": str(source), "subjects": subjects, "units": "µV (assumed)"}) + "\n"
    )
    return len(subjects)


def stages(results: str, cohort: str) -> dict[str, list[str]]:
    """Snakemake targets of each timed stage, in order."""
    return {
        "inventory": [f"{results}/{cohort}/inventory.tsv"],
        "qc": [f"{results}/{cohort}/eeg_qc.tsv"],
        "store": [f"{results}/store/store.json"],
        "pretrain": [f"{results}/pretrain/default/all/model.pt"],
        "evaluation": [f"{results}/evaluation/summary.tsv", f"{results}/evaluation/paired.tsv"],
    }


def main(argv: list[str] | None = None) -> int:
    """Convert, run the workflow stage by stage, print timings and the AUROC table."""
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--until", choices=["convert", *stages("", "")], default="evaluation")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if not (DATA / "ADHD").is_dir():
        print(f"skipped: {DATA} not present (the shared EEG ADHD data are needed)")
        return 0
    config = yaml.safe_load(CONFIG.read_text())
    name = config["cohorts"][0]
    cohort = yaml.safe_load((REPO / "config" / "cohorts" / f"{name}.yaml").read_text())
    timings: dict[str, float] = {}
    start = time.perf_counter()
    n_subjects = convert(DATA, REPO / cohort["bids_root"])
    timings["convert_s"] = round(time.perf_counter() - start, 1)
    results = config["results_dir"]
    snakemake = Path(sys.executable).with_name("snakemake")
    base = [str(snakemake), "--profile", "workflow/profiles/local", "--configfile", str(CONFIG)]
    if args.until != "convert":
        for stage, targets in stages(results, name).items():
            start = time.perf_counter()
            subprocess.run([*base, "--cores", str(args.cores), *targets], cwd=REPO, check=True)
            timings[f"{stage}_s"] = round(time.perf_counter() - start, 1)
            if stage == args.until:
                break
    numbers: dict = {"cores": args.cores, "subjects": n_subjects, **timings}
    numbers.update(_summaries(REPO / results, name))
    print(json.dumps(numbers, indent=2))
    summary = REPO / results / "evaluation" / "summary.tsv"
    if summary.is_file():
        mcsp = Path(sys.executable).with_name("mcsp")
        subprocess.run([str(mcsp), "summary", str(summary), "--metric", "auroc"], check=True)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    return 0


def _summaries(results: Path, cohort: str) -> dict:
    """Kept / excluded recordings, store size and pretraining numbers found under ``results``."""
    import pandas as pd

    out: dict = {}
    qc = results / cohort / "eeg_qc.tsv"
    if qc.is_file():
        table = pd.read_csv(qc, sep="\t")
        out["eeg_qc"] = table["status"].value_counts().to_dict()
        reasons = table.loc[table["status"] != "ok", "reason"].value_counts()
        out["excluded_reasons"] = reasons.to_dict()
    if (results / "store" / "store.json").is_file():
        store = json.loads((results / "store" / "store.json").read_text())
        out["store"] = {k: store[k] for k in ("n_subjects", "n_samples", "n_pairs") if k in store}
    if (results / "pretrain" / "all" / "summary.json").is_file():
        pre = json.loads((results / "pretrain" / "all" / "summary.json").read_text())
        keys = ("steps", "seconds", "pairs_per_s", "best_loss", "device")
        out["pretrain"] = {k: pre.get(k) for k in keys}
    return out


if __name__ == "__main__":
    sys.exit(main())
