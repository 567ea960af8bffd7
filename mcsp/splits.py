"""Subject-level folds: stratified k-fold (label × site) or leave-one-site-out.

A fold number belongs to a subject, so every sample and pair of a subject lies in the same fold:
fold ``k`` is the test set of split ``k`` and no subject is ever on both sides.

The stratified dealing gives each fold the same per-stratum counts as scikit-learn's
``StratifiedKFold`` (tested), which cannot be used directly: it refuses when every stratum is
smaller than the number of folds, as label × site strata of small cohorts are (the demo: 30
subjects, 6 strata, 10 folds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mcsp.exceptions import ConfigError

SPLIT_MODES = ("stratified_kfold", "leave_one_site_out")
UNKNOWN = "n/a"


def strata(subjects: pd.DataFrame, label: str | None) -> pd.Series:
    """Stratum ``<label value>|<site>`` of each subject; a missing label or site is ``n/a``."""
    site = subjects["site"].fillna(UNKNOWN).astype(str).replace("", UNKNOWN)
    if label is None:
        return site
    values = subjects[label].astype("Int64").astype(object).where(subjects[label].notna(), UNKNOWN)
    return values.astype(str) + "|" + site


def assign_folds(
    subjects: pd.DataFrame,
    mode: str = "stratified_kfold",
    n_folds: int = 10,
    label: str | None = None,
    seed: int = 0,
) -> pd.Series:
    """A fold number per subject row.

    Args:
        subjects: one row per subject, columns ``cohort, subject, site`` and the label column.
        mode: ``stratified_kfold``: within each stratum (label × site, :func:`strata`) the subjects
            are shuffled with the seed and dealt to folds in turn, the dealing continuing from one
            stratum to the next, so folds differ in size by at most one and each stratum is spread
            evenly (strata smaller than ``n_folds`` included — what scikit-learn's StratifiedKFold
            warns about). Subjects without the label form the stratum ``n/a`` of their site.
            ``leave_one_site_out``: fold = index of the site in sorted order (unknown site = its
            own fold ``n/a``).
        n_folds: folds of ``stratified_kfold``.
        label: stratification label column (None = site only).
        seed: shuffling seed.

    Returns:
        Integer fold per row, aligned with ``subjects``.
    """
    if subjects.duplicated(["cohort", "subject"]).any():
        raise ValueError("assign_folds needs one row per (cohort, subject).")
    if label is not None and label not in subjects.columns:
        raise ConfigError(
            f"study.stratify_label {label!r} is not a label of the study's cohorts (labels: "
            f"{', '.join(c for c in subjects.columns if c not in ('cohort', 'subject', 'site'))}). "
            "Set it to one of them or to null."
        )
    if mode == "leave_one_site_out":
        site = strata(subjects, None)
        order = {s: i for i, s in enumerate(sorted(site.unique()))}
        return site.map(order).astype(int)
    if mode != "stratified_kfold":
        raise ConfigError(f"study.split {mode!r} is unknown: use {' or '.join(SPLIT_MODES)}.")
    if len(subjects) < n_folds:
        raise ConfigError(
            f"{len(subjects)} subjects cannot fill study.folds = {n_folds} folds: lower "
            "study.folds or add cohorts."
        )
    rng = np.random.default_rng(seed)
    keys = strata(subjects, label)
    folds = pd.Series(-1, index=subjects.index, dtype=int)
    offset = 0
    for key in sorted(keys.unique()):
        members = subjects.index[keys == key]
        members = members[
            np.argsort(
                (
                    subjects.loc[members, "cohort"] + "/" + subjects.loc[members, "subject"]
                ).to_numpy()
            )
        ]
        members = members[rng.permutation(len(members))]
        folds.loc[members] = (offset + np.arange(len(members))) % n_folds
        offset += len(members)
    return folds
