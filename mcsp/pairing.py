"""Cross-matched fMRI–EEG pairs within each subject (MCSP pretraining pairs).

fMRI and EEG were not recorded together, so every fMRI window of a subject is paired with every EEG
segment of the same subject, then at most ``max_pairs`` pairs are kept by seeded sampling. A pair is
``natural`` when both samples come from the same session, ``cross`` otherwise. Subjects with one
modality keep their samples as single-modality rows (``fmri_only`` / ``eeg_only``).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

PAIR_KINDS = ("natural", "cross", "fmri_only", "eeg_only")
# Columns of the pairs table before the label columns.
PAIR_COLUMNS = ["pair_id", "cohort", "subject", "site"]
PAIR_TAIL = ["fmri_sample", "eeg_sample", "kind"]


def subject_rng(seed: int, cohort: str, subject: str) -> np.random.Generator:
    """A generator fixed by the seed and the subject alone (independent of processing order)."""
    return np.random.default_rng([seed, zlib.crc32(f"{cohort}/{subject}".encode())])


def pair_samples(
    samples: pd.DataFrame, max_pairs: int, seed: int, labels: list[str] | None = None
) -> pd.DataFrame:
    """The pairs table of a sample index.

    Args:
        samples: one row per sample with columns ``sample_id, cohort, subject, session, site,
            modality`` (``fmri`` or ``eeg``) and the label columns.
        max_pairs: most rows per subject (pairs, or single-modality samples).
        seed: sampling seed; the same seed gives the same table.
        labels: label columns copied to the pairs table (default: none).

    Returns:
        Columns ``pair_id, cohort, subject, site, <labels>, fmri_sample, eeg_sample, kind``; the
        missing side of a single-modality row is an empty string. Rows are sorted by pair id.
    """
    labels = list(labels or [])
    rows: list[dict] = []
    for (cohort, subject), group in samples.groupby(["cohort", "subject"], sort=True):
        group = group.sort_values("sample_id")
        fmri = group[group["modality"] == "fmri"]
        eeg = group[group["modality"] == "eeg"]
        rng = subject_rng(seed, str(cohort), str(subject))
        if len(fmri) and len(eeg):
            n_all = len(fmri) * len(eeg)
            chosen = np.arange(n_all)
            if n_all > max_pairs:
                chosen = np.sort(rng.choice(n_all, size=max_pairs, replace=False))
            fi, ei = np.divmod(chosen, len(eeg))
            combos = [(fmri.iloc[f], eeg.iloc[e]) for f, e in zip(fi, ei, strict=True)]
        else:
            single = fmri if len(fmri) else eeg
            chosen = np.arange(len(single))
            if len(single) > max_pairs:
                chosen = np.sort(rng.choice(len(single), size=max_pairs, replace=False))
            combos = [
                (single.iloc[i], None) if len(fmri) else (None, single.iloc[i]) for i in chosen
            ]
        first = group.iloc[0]
        for k, (f, e) in enumerate(combos):
            if f is not None and e is not None:
                kind = "natural" if str(f["session"]) == str(e["session"]) else "cross"
            else:
                kind = "fmri_only" if f is not None else "eeg_only"
            rows.append(
                {
                    "pair_id": f"{cohort}_sub-{subject}_pair-{k:03d}",
                    "cohort": cohort,
                    "subject": subject,
                    "site": first["site"],
                    **{label: first[label] for label in labels},
                    "fmri_sample": "" if f is None else f["sample_id"],
                    "eeg_sample": "" if e is None else e["sample_id"],
                    "kind": kind,
                }
            )
    table = pd.DataFrame(rows, columns=PAIR_COLUMNS + labels + PAIR_TAIL)
    for label in labels:
        table[label] = table[label].astype("Int64")
    return table
