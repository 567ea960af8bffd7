"""The pretraining dataset store: samples' domains in HDF5, an index, pairs and folds.

Layout of ``out_dir`` (every file written to ``<name>.tmp`` then renamed):

- ``samples.h5``: datasets ``/<modality>/<domain>`` (modality fmri or eeg, domain spatial,
  temporal or frequency), float32, shape ``(n_samples, …)``, one sample per chunk, uncompressed.
  With ``study.spatial: run`` the spatial domain of every sample is its run's matrix (fMRI: FC of
  all the run's kept volumes; EEG: mean of the recording's segment matrices, per condition when
  conditions are marked) and the window's or segment's own matrix is kept as
  ``/<modality>/spatial_window`` (for window augmentation).
- ``index.tsv``: one row per sample: ``sample_id, cohort, subject, session, site, <labels>,
  modality, task, run, tag, start, row, fold`` (``row`` = position in that modality's arrays;
  ``start`` = first kept volume for fMRI, seconds into the recording for EEG). ``task`` and
  ``tag`` are the run's BIDS task, or for an EEG recording with conditions marked by events
  (cohort ``eeg.conditions``) the condition its segment lies in.
- ``pairs.tsv``: :func:`mcsp.pairing.pair_samples`'s table plus ``fold``.
- ``exclusions.tsv``: every run, recording or subject left out, with the reason.
- ``store.json``: the study settings, ROI labels, channels, frequency grids, shapes and counts.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import mne
import numpy as np
import pandas as pd
import torch
from torch_geometric.data import Batch, Data

from mcsp.bids import USABLE, read_inventory
from mcsp.domains import (
    DOMAINS,
    MODALITIES,
    annotation_spans,
    clean_mask,
    eeg_domains,
    eeg_segment_starts,
    fmri_domains,
    fmri_windows,
    sparsify,
    study_settings,
)
from mcsp.eeg import CHANNEL_SETS, CONDITION_PREFIX
from mcsp.exceptions import McspError
from mcsp.fmri import functional_connectivity
from mcsp.models.graph import graph_rwse
from mcsp.pairing import pair_samples
from mcsp.parallel import process_pool
from mcsp.splits import assign_folds

log = logging.getLogger(__name__)

EXCLUSION_COLUMNS = ["cohort", "subject", "session", "modality", "task", "run", "source", "reason"]
FILES = ("samples.h5", "index.tsv", "pairs.tsv", "exclusions.tsv", "store.json")


def _read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _na(value: Any) -> str:
    return "" if value in (None, "n/a") or pd.isna(value) else str(value)


def _sample_prefix(cohort: str, row: Mapping[str, Any]) -> str:
    parts = [cohort, f"sub-{row['subject']}"]
    parts += [
        f"{k}-{_na(row[key])}"
        for k, key in (("ses", "session"), ("task", "task"), ("run", "run"))
        if _na(row[key])
    ]
    return "_".join(parts)


def _exclusion(
    cohort: str, row: Mapping[str, Any], modality: str, source: str, reason: str
) -> dict:
    return {
        "cohort": cohort,
        "subject": row["subject"],
        "session": _na(row.get("session")),
        "modality": modality,
        "task": _na(row.get("task")),
        "run": _na(row.get("run")),
        "source": source,
        "reason": reason,
    }


def read_roi_labels(timeseries: str | Path) -> list[str]:
    """ROI labels (the header) of a time series TSV."""
    with open(timeseries) as handle:
        return handle.readline().rstrip("\n").split("\t")


def fmri_run_samples(
    cohort: str, row: Mapping[str, Any], study: Mapping[str, Any]
) -> tuple[list[dict], dict[str, np.ndarray] | None, str]:
    """Windows of one fMRI run and their domains.

    Returns:
        ``(metadata per window, {domain: stacked array} or None, exclusion reason or "")``.
    """
    path = Path(row["timeseries"])
    sidecar = path.with_suffix(".json")
    try:
        ts = pd.read_csv(path, sep="\t").to_numpy(dtype=float)
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except (OSError, ValueError) as err:
        return [], None, f"cannot read {path} or its sidecar ({err})"
    tr = meta.get("RepetitionTime") or study["fmri_default_tr"]
    if not tr:
        return (
            [],
            None,
            (
                f"RepetitionTime unknown ({sidecar}); set it in the cohort file or set "
                "study.fmri_default_tr"
            ),
        )
    starts, problems = fmri_windows(ts, study["fmri_window"], study["fmri_stride"])
    if not starts:
        return [], None, "; ".join(problems)
    prefix = _sample_prefix(cohort, row)
    window = study["fmri_window"]
    per = [fmri_domains(ts[s : s + window], float(tr), study) for s in starts]
    metas = [
        {"sample_id": f"{prefix}_fmri-{k:03d}", "tag": _na(row["task"]), "start": s}
        for k, s in enumerate(starts)
    ]
    arrays = {d: np.stack([p[d] for p in per]) for d in DOMAINS}
    if study["spatial"] == "run":
        run_fc = functional_connectivity(ts[np.isfinite(ts).all(axis=1)]).astype(np.float32)
        arrays = _run_spatial(arrays, run_fc)
    return metas, arrays, ""


def _run_spatial(arrays: dict[str, np.ndarray], run: np.ndarray) -> dict[str, np.ndarray]:
    """``spatial`` = the run's matrix for every sample; the samples' own go to
    ``spatial_window`` (study.spatial run)."""
    out = dict(arrays)
    out["spatial_window"] = arrays["spatial"]
    out["spatial"] = np.broadcast_to(run, arrays["spatial"].shape).astype(np.float32)
    return out


def eeg_run_samples(
    cohort: str, row: Mapping[str, Any], study: Mapping[str, Any]
) -> tuple[list[dict], dict[str, np.ndarray] | None, str]:
    """Clean segments of one EEG recording (avoiding ``BAD*`` annotations) and their domains.

    A recording with condition spans (``condition/<name>`` annotations, see
    ``mcsp.eeg.mark_conditions``) is cut within each span, and each segment's task and tag are
    its condition; time outside every span is left out. Without spans the whole recording is cut
    and tagged with its task.
    """
    path = Path(row["clean_file"])
    try:
        raw = mne.io.read_raw_fif(path, preload=False, verbose="error")
    except (OSError, ValueError) as err:
        return [], None, f"cannot read {path} ({err})"
    channels = CHANNEL_SETS[study["channel_set"]]
    missing = [c for c in channels if c not in raw.ch_names]
    if missing:
        return (
            [],
            None,
            (
                f"channel set {study['channel_set']} not reachable: {', '.join(missing)} "
                f"missing from {path}; re-run EEG preprocessing with eeg.channel_set "
                f"{study['channel_set']}"
            ),
        )
    sfreq = raw.info["sfreq"]
    length = int(round(study["eeg_segment_s"] * sfreq))
    stride = max(1, int(round(study["eeg_stride_s"] * sfreq)))
    good = clean_mask(raw)
    spans = annotation_spans(raw, CONDITION_PREFIX)
    within = f" within the condition spans ({', '.join(dict.fromkeys(n for n, _, _ in spans))})"
    if not spans:
        spans, within = [(_na(row["task"]), 0, raw.n_times)], ""
    starts = [
        (name, first + s)
        for name, first, stop in spans
        for s in eeg_segment_starts(good[first:stop], length, stride)
    ]
    if not starts:
        return (
            [],
            None,
            (
                f"no clean stretch of {study['eeg_segment_s']} s between BAD segments{within} "
                f"({raw.n_times / sfreq:.1f} s recorded)"
            ),
        )
    data = raw.get_data(picks=channels)
    prefix = _sample_prefix(cohort, row)
    per, metas = [], []
    for k, (name, s) in enumerate(starts):
        segment = data[:, s : s + length]
        if not np.isfinite(segment).all():
            continue
        per.append(eeg_domains(segment, sfreq, study))
        metas.append(
            {"sample_id": f"{prefix}_eeg-{k:03d}", "task": name, "tag": name, "start": s / sfreq}
        )
    if not per:
        return [], None, "every clean segment holds non-finite values"
    arrays = {d: np.stack([p[d] for p in per]) for d in DOMAINS}
    if study["spatial"] == "run":  # the connectivity of the recording (per condition): mean z
        tags = np.array([meta["tag"] for meta in metas])
        run = np.empty_like(arrays["spatial"])
        for tag in set(tags):
            run[tags == tag] = arrays["spatial"][tags == tag].mean(axis=0)
        arrays = {**arrays, "spatial": run, "spatial_window": arrays["spatial"]}
    return metas, arrays, ""


def _run_task(args: tuple[str, str, dict, dict]) -> tuple:
    modality, cohort, row, study = args
    worker = fmri_run_samples if modality == "fmri" else eeg_run_samples
    return (modality, cohort, row, *worker(cohort, row, study))


class _H5Writer:
    """Appends stacked sample arrays to ``/<modality>/<domain>`` datasets (one sample per chunk)."""

    def __init__(self, path: Path) -> None:
        self.file = h5py.File(path, "w")
        self.rows = dict.fromkeys(MODALITIES, 0)

    def append(self, modality: str, arrays: Mapping[str, np.ndarray]) -> int:
        first = self.rows[modality]
        n = len(next(iter(arrays.values())))
        for domain, array in arrays.items():
            name = f"{modality}/{domain}"
            if name not in self.file:
                self.file.create_dataset(
                    name,
                    shape=(0, *array.shape[1:]),
                    maxshape=(None, *array.shape[1:]),
                    chunks=(1, *array.shape[1:]),
                    dtype="float32",
                )
            dset = self.file[name]
            if dset.shape[1:] != array.shape[1:]:
                raise McspError(
                    f"{name}: sample shape {array.shape[1:]} differs from {dset.shape[1:]}; the "
                    "study's cohorts must share ROI and channel sets."
                )
            dset.resize(first + n, axis=0)
            dset[first : first + n] = array
        self.rows[modality] = first + n
        return first


def _cohort_inputs(results_dir: Path, cohort: str) -> tuple[pd.DataFrame, list[str], dict]:
    """Subject table (site, labels) and the usable QC rows of one cohort."""
    folder = results_dir / cohort
    inventory_path = folder / "inventory.tsv"
    if not inventory_path.is_file():
        raise McspError(
            f"{inventory_path}: not found. Build cohort {cohort!r} first (the workflow's "
            "inventory and QC rules, or `mcsp cohort import`), or drop it from study.cohorts."
        )
    inventory = read_inventory(inventory_path)
    table = inventory.table
    info = table.groupby("subject", sort=True).agg(
        site=("site", lambda s: next((v for v in s if v not in ("", "n/a")), "n/a")),
        **{label: (label, "first") for label in inventory.labels},
    )
    info = info.reset_index()
    info.insert(0, "cohort", cohort)
    runs: dict[str, pd.DataFrame] = {}
    for modality in MODALITIES:
        qc_path = folder / f"{modality}_qc.tsv"
        if qc_path.is_file():
            qc = _read_tsv(qc_path)
            runs[modality] = qc[qc["status"].isin(USABLE)]
    if not runs:
        raise McspError(
            f"{folder}: neither fmri_qc.tsv nor eeg_qc.tsv found for cohort {cohort!r}. Run its "
            "fMRI or EEG steps first, or drop it from study.cohorts."
        )
    return info, list(inventory.labels), runs


HASH_BYTES = 1 << 16  # bytes of each recording hashed to find the same data in two cohorts


def shared_recordings(results_dir: str | Path, cohorts: Sequence[str]) -> list[dict[str, Any]]:
    """Usable recordings of different cohorts whose input files begin with the same bytes
    (SHA-256 of the first 64 KiB): the same data entered twice, e.g. a dataset copied to another
    folder and added as a second cohort, would put one person in two folds.

    Returns:
        One entry per shared content: ``{"sha256_first_64k", "recordings": [cohort/subject:
        path, ...]}``; each is also logged as a warning.
    """
    by_hash: dict[str, list[tuple[str, str, str]]] = {}
    for cohort in cohorts:
        path = Path(results_dir) / cohort / "inventory.tsv"
        if not path.is_file():
            continue
        table = read_inventory(path).table
        for row in table[table["status"].isin(USABLE)].itertuples():
            source = Path(str(row.path))
            if not source.is_file():
                continue
            with source.open("rb") as stream:
                digest = hashlib.sha256(stream.read(HASH_BYTES)).hexdigest()
            by_hash.setdefault(digest, []).append((cohort, str(row.subject), str(source)))
    shared = []
    for digest, found in by_hash.items():
        if len({cohort for cohort, _, _ in found}) < 2:
            continue
        names = [f"{cohort}/sub-{subject}: {source}" for cohort, subject, source in found]
        shared.append({"sha256_first_64k": digest, "recordings": names})
        log.warning(
            "the same recording (first 64 KiB identical) is in two cohorts: %s. One person in two "
            "cohorts can fall in two folds; drop the copy from one cohort.",
            "; ".join(names),
        )
    return shared


def _check_atlas(
    study: Mapping[str, Any], fmri: Mapping[str, pd.DataFrame]
) -> tuple[str, list[str]]:
    """The study's atlas and ROI labels; cohorts that differ are refused by name."""
    atlases = {c: sorted(set(t["atlas"])) for c, t in fmri.items() if len(t)}
    if not atlases:
        return study["atlas"] or "", []
    atlas = study["atlas"]
    if atlas is None:
        found = sorted({a for names in atlases.values() for a in names})
        if len(found) > 1:
            raise McspError(
                "study cohorts use different atlases ("
                + "; ".join(f"{c}: {', '.join(a)}" for c, a in atlases.items())
                + "): set study.atlas and study.cohorts to cohorts parcellated with one atlas."
            )
        atlas = found[0]
    lacking = [c for c, names in atlases.items() if atlas not in names]
    if lacking:
        raise McspError(
            f"cohorts {', '.join(lacking)} have no fMRI time series in atlas {atlas!r} (they have "
            + "; ".join(c + ": " + ", ".join(atlases[c]) for c in lacking)
            + "): drop them from "
            "study.cohorts or parcellate them with that atlas."
        )
    labels = {
        c: read_roi_labels(t[t["atlas"] == atlas]["timeseries"].iloc[0])
        for c, t in fmri.items()
        if len(t)
    }
    reference = next(iter(labels.values()))
    differ = [c for c, lab in labels.items() if lab != reference]
    if differ:
        first = next(iter(labels))
        raise McspError(
            f"cohorts {first} and {', '.join(differ)} have different ROI sets in atlas {atlas!r} "
            f"({len(reference)} vs {', '.join(str(len(labels[c])) for c in differ)} ROIs): "
            "drop one from study.cohorts or parcellate both the same way."
        )
    return atlas, reference


def _atomic_tsv(table: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    table.to_csv(tmp, sep="\t", index=False, na_rep="n/a", lineterminator="\n")
    os.replace(tmp, path)


def build_store(
    config: Mapping[str, Any], results_dir: str | Path, out_dir: str | Path, jobs: int = 1
) -> dict[str, Any]:
    """Build the study's dataset store from the cohorts' QC tables (see the module docstring).

    Args:
        config: the validated workflow config (``load_config``); its ``study`` block is used.
        results_dir: folder holding ``<cohort>/inventory.tsv``, ``fmri_qc.tsv``, ``eeg_qc.tsv``.
        out_dir: the store folder (created).
        jobs: processes computing the domains.

    Returns:
        The summary also written to ``store.json`` (counts, shapes, files, seconds).

    Raises:
        McspError: cohorts missing their inputs or mixing atlases / ROI sets; no usable sample.
    """
    t0 = time.perf_counter()
    study = study_settings(config)
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    infos, labels, runs = [], [], {m: {} for m in MODALITIES}
    for cohort in study["cohorts"]:
        info, cohort_labels, cohort_runs = _cohort_inputs(results_dir, cohort)
        infos.append(info)
        labels += [lab for lab in cohort_labels if lab not in labels]
        for modality, table in cohort_runs.items():
            runs[modality][cohort] = table
    atlas, roi_labels = _check_atlas(study, runs["fmri"])
    shared = shared_recordings(results_dir, study["cohorts"]) if len(study["cohorts"]) > 1 else []
    subjects = pd.concat(infos, ignore_index=True)
    for label in labels:
        subjects[label] = subjects.get(label, pd.Series(pd.NA, index=subjects.index)).astype(
            "Int64"
        )

    tasks = [
        ("fmri", c, dict(r), study)
        for c, t in runs["fmri"].items()
        for _, r in t[t["atlas"] == atlas].iterrows()
    ] + [("eeg", c, dict(r), study) for c, t in runs["eeg"].items() for _, r in t.iterrows()]

    h5_path = out_dir / "samples.h5"
    tmp_h5 = h5_path.with_name(h5_path.name + ".tmp")
    writer = _H5Writer(tmp_h5)
    records, exclusions = [], []
    pool = process_pool(jobs) if jobs > 1 else None
    try:
        # results are consumed as they arrive, in task order: memory holds what is not yet written
        results = pool.map(_run_task, tasks, chunksize=4) if pool else map(_run_task, tasks)
        for modality, cohort, row, metas, arrays, reason in results:
            source = row["timeseries"] if modality == "fmri" else row["clean_file"]
            if arrays is None:
                exclusions.append(_exclusion(cohort, row, modality, source, reason))
                continue
            first = writer.append(modality, arrays)
            for k, meta in enumerate(metas):
                records.append(
                    {
                        "cohort": cohort,
                        "subject": row["subject"],
                        "session": _na(row["session"]),
                        "modality": modality,
                        "task": _na(row["task"]),
                        "run": _na(row["run"]),
                        **meta,  # an EEG segment's task: the condition it lies in, if any
                        "row": first + k,
                    }
                )
        writer.file.attrs["roi_labels"] = json.dumps(roi_labels)
        writer.file.attrs["channels"] = json.dumps(CHANNEL_SETS[study["channel_set"]])
        shapes = {
            f"{m}/{d}": list(group[d].shape[1:]) for m, group in writer.file.items() for d in group
        }
    finally:
        writer.file.close()
        if pool:
            pool.shutdown(cancel_futures=True)
    if not records:
        tmp_h5.unlink(missing_ok=True)
        raise McspError(
            f"no usable fMRI window or EEG segment in cohorts {', '.join(study['cohorts'])} "
            f"({len(exclusions)} runs excluded; first reason: "
            f"{exclusions[0]['reason'] if exclusions else 'no usable QC rows'})."
        )

    samples = pd.DataFrame(records)
    have = set(zip(samples["cohort"], samples["subject"], strict=True))
    for _, row in subjects.iterrows():
        key = (row["cohort"], row["subject"])
        if key in have:
            continue
        reasons = sorted({e["reason"] for e in exclusions if (e["cohort"], e["subject"]) == key})
        exclusions.append(
            _exclusion(
                row["cohort"],
                row,
                "subject",
                "",
                "no usable fMRI window or EEG segment"
                + (f": {'; '.join(reasons)}" if reasons else " (no usable run in the QC tables)"),
            )
        )
    subjects = subjects[
        [k in have for k in zip(subjects["cohort"], subjects["subject"], strict=True)]
    ]
    subjects = subjects.reset_index(drop=True)
    subjects["fold"] = assign_folds(
        subjects, study["split"], study["folds"], study["stratify_label"], study["seed"]
    )
    index = samples.merge(subjects, on=["cohort", "subject"], how="left")
    index = index[
        [
            "sample_id",
            "cohort",
            "subject",
            "session",
            "site",
            *labels,
            "modality",
            "task",
            "run",
            "tag",
            "start",
            "row",
            "fold",
        ]
    ].sort_values(["modality", "row"], kind="stable")
    pairs = pair_samples(index, study["max_pairs_per_subject"], study["seed"], labels)
    pairs = pairs.merge(subjects[["cohort", "subject", "fold"]], on=["cohort", "subject"])

    os.replace(tmp_h5, h5_path)
    _atomic_tsv(index, out_dir / "index.tsv")
    _atomic_tsv(pairs, out_dir / "pairs.tsv")
    _atomic_tsv(pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS), out_dir / "exclusions.tsv")
    no_label = [
        c
        for c in study["cohorts"]
        if study["stratify_label"]
        and subjects.loc[subjects["cohort"] == c, study["stratify_label"]].isna().all()
    ]
    summary = {
        "study": study,
        "atlas": atlas,
        "roi_labels": roi_labels,
        "channels": CHANNEL_SETS[study["channel_set"]],
        "labels": labels,
        "fmri_frequencies_hz": np.linspace(
            *study["fmri_frequency_range"], study["fmri_frequency_bins"]
        ).tolist(),
        "eeg_frequencies_hz": np.linspace(
            *study["eeg_frequency_range"], study["eeg_frequency_bins"]
        ).tolist(),
        "shapes": shapes,
        "n_subjects": len(subjects),
        "n_samples": {m: int((index["modality"] == m).sum()) for m in MODALITIES},
        "n_pairs": {k: int(v) for k, v in pairs["kind"].value_counts().items()},
        "n_excluded": len(exclusions),
        "cohorts_without_stratify_label": no_label,
        "shared_recordings": shared,
        "seconds": round(time.perf_counter() - t0, 2),
        "files": [str(out_dir / f) for f in FILES],
    }
    tmp = out_dir / "store.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, out_dir / "store.json")
    log.info("store %s: %d subjects, %d pairs", out_dir, len(subjects), len(pairs))
    return summary


def read_store_table(store_dir: str | Path, name: str) -> pd.DataFrame:
    """``index``, ``pairs`` or ``exclusions`` of a store (labels as nullable integers)."""
    path = Path(store_dir) / f"{name}.tsv"
    if not path.is_file():
        raise McspError(f"{path}: not found; build the store first (mcsp.store.build_store).")
    table = _read_tsv(path)
    meta = json.loads((Path(store_dir) / "store.json").read_text())
    for column in [*meta["labels"], "row", "fold"]:
        if column in table:
            table[column] = pd.array(
                [None if v in ("", "n/a") else int(v) for v in table[column]], dtype="Int64"
            )
    return table


class PairDataset(torch.utils.data.Dataset):
    """Pairs of a store, read lazily from ``samples.h5``.

    The HDF5 file is opened on first access in each process (never at construction), so a
    ``DataLoader`` with workers opens one handle per worker and memory does not grow with the store.
    An item is ``{"pair_id", "fmri", "eeg"}``, each modality ``None`` when missing or a dict with
    ``spatial`` (a PyG ``Data``: x = connectivity rows, edge_index, edge_attr = weights after the
    study's sparsification), ``temporal`` and ``frequency`` (float tensors).

    Args:
        store_dir: the folder ``build_store`` wrote.
        folds: keep the pairs of these folds only (None = all).
        exclude_folds: drop the pairs of these folds (e.g. the test fold).
        modality: instead of the pairs, every sample of this modality once, as an item whose
            other modality is None (``pair_id`` = ``sample_id``): for embeddings and evaluation.
        window_views: also read each sample's own window / segment graph as ``spatial_window``
            (stores built with ``study.spatial: run``), for window augmentation.
        cache: keep every sample read in memory (shared with :meth:`subset` datasets), for loops
            that read the same samples every epoch in one process (fine-tuning); memory grows to
            the size of the samples read.
        rwse_steps: store each graph's random-walk encoding of this many steps on it as ``rwse``
            (:func:`mcsp.models.graph.graph_rwse`), so an encoder with that ``pe_dim`` does not
            compute it on every batch (0 = not stored); worth it with ``cache``.
    """

    def __init__(
        self,
        store_dir: str | Path,
        folds: Iterable[int] | None = None,
        exclude_folds: Iterable[int] = (),
        modality: str | None = None,
        window_views: bool = False,
        cache: bool = False,
        rwse_steps: int = 0,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.rwse_steps = int(rwse_steps)
        self._cache: dict[tuple[str, int], dict[str, Any]] | None = {} if cache else None
        self.meta = json.loads((self.store_dir / "store.json").read_text())
        self.window_views = bool(window_views)
        if window_views and not any(k.endswith("/spatial_window") for k in self.meta["shapes"]):
            raise McspError(
                f"{store_dir}: window augmentation needs the windows' own connectivity, which "
                "only stores built with study.spatial: run keep; rebuild the store with it or "
                "set pretrain.augment.window_view and finetune.window_augment to 0."
            )
        index = read_store_table(store_dir, "index")
        if modality is None:
            pairs = read_store_table(store_dir, "pairs")
        else:
            if modality not in MODALITIES:
                raise ValueError(f"modality {modality!r}: use one of {', '.join(MODALITIES)}")
            pairs = index[index["modality"] == modality].drop(columns="row")
            pairs = pairs.assign(pair_id=pairs["sample_id"], kind=f"{modality}_sample")
            for m in MODALITIES:
                pairs[f"{m}_sample"] = pairs["sample_id"] if m == modality else ""
        if folds is not None:
            pairs = pairs[pairs["fold"].isin(list(folds))]
        pairs = pairs[~pairs["fold"].isin(list(exclude_folds))].reset_index(drop=True)
        rows = dict(zip(index["sample_id"], index["row"].astype(int), strict=True))
        self.pairs = pairs
        self.rows = {
            m: np.array([rows.get(s, -1) for s in pairs[f"{m}_sample"]], dtype=np.int64)
            for m in MODALITIES
        }
        self._h5: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, keep: np.ndarray) -> PairDataset:
        """A dataset over the pairs where the boolean ``keep`` is true (same store, lazy)."""
        return self._take(np.flatnonzero(np.asarray(keep, dtype=bool)))

    def distinct(self, modality: str) -> tuple[PairDataset, np.ndarray]:
        """Each distinct ``modality`` sample of the pairs once, and where each pair's sample is.

        Returns:
            A dataset of one item per distinct sample (its first pair, the other modality
            dropped), and for each pair the position of its sample in that dataset (-1 where the
            pair lacks the modality). Lets evaluation encode a sample shared by several pairs
            (an fMRI window paired with several EEG segments) once.
        """
        rows = self.rows[modality]
        present = np.flatnonzero(rows >= 0)
        unique, first = np.unique(rows[present], return_index=True)
        out = self._take(present[first])
        out.rows = {
            m: r if m == modality else np.full(len(r), -1, dtype=np.int64)
            for m, r in out.rows.items()
        }
        position = np.full(len(rows), -1, dtype=np.int64)
        position[present] = np.searchsorted(unique, rows[present])
        return out, position

    def _take(self, index: np.ndarray) -> PairDataset:
        part = copy.copy(self.__getstate__())
        out = PairDataset.__new__(PairDataset)
        out.__dict__.update(part)
        out.pairs = self.pairs.iloc[index].reset_index(drop=True)
        out.rows = {m: r[index] for m, r in self.rows.items()}
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_h5"], state["_pid"] = None, None
        return state

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.store_dir / "samples.h5", "r")
            self._pid = os.getpid()
        return self._h5

    def _graph(self, name: str, row: int) -> Data:
        rule = self.meta["study"]["sparsify"]
        fc = self._file()[name][row]
        edge_index, weight = sparsify(fc, rule["rule"], rule["value"])
        graph = Data(
            x=torch.from_numpy(fc),
            edge_index=torch.from_numpy(edge_index),
            edge_attr=torch.from_numpy(weight),
        )
        if self.rwse_steps:
            graph.rwse = graph_rwse(graph, self.rwse_steps)
        return graph

    def _sample(self, modality: str, row: int) -> dict[str, Any]:
        if self._cache is None:
            return self._read_sample(modality, row)
        key = (modality, row)
        if key not in self._cache:
            self._cache[key] = self._read_sample(modality, row)
        return self._cache[key]

    def _read_sample(self, modality: str, row: int) -> dict[str, Any]:
        h5 = self._file()
        sample = {
            "spatial": self._graph(f"{modality}/spatial", row),
            "temporal": torch.from_numpy(h5[f"{modality}/temporal"][row]),
            "frequency": torch.from_numpy(h5[f"{modality}/frequency"][row]),
        }
        if self.window_views and f"{modality}/spatial_window" in h5:
            sample["spatial_window"] = self._graph(f"{modality}/spatial_window", row)
        return sample

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {"pair_id": self.pairs.at[i, "pair_id"]}
        for modality in MODALITIES:
            row = int(self.rows[modality][i])
            item[modality] = self._sample(modality, row) if row >= 0 else None
        return item


def collate_pairs(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Batch ``PairDataset`` items.

    Returns:
        ``{"pair_id": list, "fmri": {...}, "eeg": {...}}``; each modality holds ``mask`` (bool,
        one per item: the item has that modality) and, over the items that have it (in order),
        ``spatial`` (a PyG ``Batch``), ``temporal`` and ``frequency`` (stacked tensors); those three
        are None when no item of the batch has the modality. Items read with ``window_views``
        add ``spatial_window`` (a ``Batch``).
    """
    out: dict[str, Any] = {"pair_id": [it["pair_id"] for it in items]}
    for modality in MODALITIES:
        present = [it[modality] for it in items if it[modality] is not None]
        batch: dict[str, Any] = {
            "mask": torch.tensor([it[modality] is not None for it in items], dtype=torch.bool)
        }
        if present:
            batch["spatial"] = Batch.from_data_list([p["spatial"] for p in present])
            batch["temporal"] = torch.stack([p["temporal"] for p in present])
            batch["frequency"] = torch.stack([p["frequency"] for p in present])
            if all("spatial_window" in p for p in present):
                batch["spatial_window"] = Batch.from_data_list(
                    [p["spatial_window"] for p in present]
                )
        else:
            batch.update(spatial=None, temporal=None, frequency=None)
        out[modality] = batch
    return out
