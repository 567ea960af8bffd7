"""Subject-level folds: balanced, stratified, deterministic, and never leaking a subject."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mcsp.exceptions import ConfigError
from mcsp.splits import assign_folds


def _subjects(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = pd.array(rng.integers(0, 2, n), dtype="Int64")
    label[:5] = pd.NA  # subjects without the label
    return pd.DataFrame(
        {
            "cohort": ["a"] * (n // 2) + ["b"] * (n - n // 2),
            "subject": [f"{i:03d}" for i in range(n)],
            "site": rng.choice(["S1", "S2", "S3", "n/a"], n),
            "ASD": label,
        }
    )


def test_stratified_folds_balanced_and_deterministic() -> None:
    subjects = _subjects()
    folds = assign_folds(subjects, "stratified_kfold", 10, "ASD", seed=1)
    assert folds.notna().all() and set(folds) == set(range(10))
    assert np.ptp(np.bincount(folds)) <= 1
    pd.testing.assert_series_equal(folds, assign_folds(subjects, "stratified_kfold", 10, "ASD", 1))
    # subjects without the label still get a fold, spread over folds
    assert folds[subjects["ASD"].isna()].nunique() == 5
    # each stratum is spread evenly
    for _, group in subjects.assign(fold=folds).groupby([subjects["ASD"].fillna(-1), "site"]):
        counts = np.bincount(group["fold"], minlength=10)
        assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("mode", ["stratified_kfold", "leave_one_site_out"])
def test_no_subject_on_both_sides(mode: str) -> None:
    subjects = _subjects()
    # several samples per subject, as in the index
    samples = subjects.loc[subjects.index.repeat(3)].reset_index(drop=True)
    samples["fold"] = samples[["cohort", "subject"]].merge(
        subjects.assign(fold=assign_folds(subjects, mode, 10, "ASD", 0)), how="left"
    )["fold"]
    for fold in sorted(samples["fold"].unique()):
        test = set(samples.loc[samples["fold"] == fold, "subject"])
        train = set(samples.loc[samples["fold"] != fold, "subject"])
        assert test and train and not test & train


def test_leave_one_site_out_one_site_per_fold() -> None:
    subjects = _subjects()
    folds = assign_folds(subjects, "leave_one_site_out")
    per_fold = subjects.groupby(folds)["site"].nunique()
    assert (per_fold == 1).all() and len(per_fold) == subjects["site"].nunique()


def test_errors() -> None:
    subjects = _subjects(8)
    with pytest.raises(ConfigError, match="study.folds"):
        assign_folds(subjects, "stratified_kfold", 10)
    with pytest.raises(ConfigError, match="MDD"):
        assign_folds(subjects, "stratified_kfold", 2, "MDD")
    with pytest.raises(ConfigError, match="study.split"):
        assign_folds(subjects, "random", 2)


@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
def test_fold_allocation_matches_scikit_learn() -> None:
    """Where scikit-learn's StratifiedKFold accepts the strata, each stratum is spread over the
    folds in the same counts, and the folds have the same sizes, as there."""
    from sklearn.model_selection import StratifiedKFold

    from mcsp.splits import strata

    subjects = _subjects(n=97, seed=3)
    keys = strata(subjects, "ASD")
    ours = pd.crosstab(assign_folds(subjects, "stratified_kfold", 5, "ASD", seed=0), keys)
    theirs = pd.Series(-1, index=subjects.index)
    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    for k, (_, test) in enumerate(skf.split(np.zeros(len(keys)), keys.to_numpy())):
        theirs.iloc[test] = k
    theirs = pd.crosstab(theirs, keys)
    assert list(ours.columns) == list(theirs.columns)
    np.testing.assert_array_equal(np.sort(ours.to_numpy(), 0), np.sort(theirs.to_numpy(), 0))
    assert sorted(ours.sum(axis=1)) == sorted(theirs.sum(axis=1))
