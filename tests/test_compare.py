"""Paired comparison against a reference model, checked on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mcsp.compare import (
    bootstrap_indices,
    corrected_t_p,
    paired_comparison,
    paired_text,
    rank_auroc,
    wilcoxon_p,
)

FOLDS = 5


def _predictions(model: str, scores: dict[str, float], seeds: int = 1) -> pd.DataFrame:
    """Five folds of four subjects (two of each class); ``scores`` maps subject → score."""
    rows = []
    for seed in range(seeds):
        for fold in range(FOLDS):
            for k in range(4):
                subject = f"s{fold}{k}"
                rows.append(
                    {
                        "experiment": "main",
                        "model": model,
                        "task": "ASD",
                        "fold": str(fold),
                        "seed": str(seed),
                        "cohort": "c",
                        "subject": subject,
                        "sample_id": subject,
                        "y": int(k >= 2),
                        "score": scores[subject],
                    }
                )
    return pd.DataFrame(rows)


def _metrics(model: str, aurocs: list[float], seeds: int = 1) -> pd.DataFrame:
    rows = [
        {
            "experiment": "main",
            "model": model,
            "task": "ASD",
            "fold": str(fold),
            "seed": str(seed),
            "metric": "auroc",
            "value": value,
        }
        for seed in range(seeds)
        for fold, value in enumerate(aurocs)
    ]
    return pd.DataFrame(rows)


SUBJECTS = [f"s{fold}{k}" for fold in range(FOLDS) for k in range(4)]
PERFECT = {s: float(s[-1] >= "2") for s in SUBJECTS}  # class 1 = k 2 and 3
CONSTANT = dict.fromkeys(SUBJECTS, 0.5)


def test_rank_auroc_equals_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    scores = rng.integers(0, 5, (3, 40)).astype(float)  # many ties
    expected = [roc_auc_score(y, row) for row in scores]
    np.testing.assert_allclose(rank_auroc(y, scores), expected)
    assert np.isnan(rank_auroc(np.ones(5), np.arange(5.0))[0])


def test_bootstrap_keeps_class_sizes() -> None:
    y = np.array([0, 0, 0, 1, 1])
    idx = bootstrap_indices(y, 50, seed=1)
    assert idx.shape == (50, 5)
    assert (y[idx].sum(axis=1) == 2).all()


def test_wilcoxon_and_corrected_t_by_hand() -> None:
    # five positive differences of distinct size: exact two-sided p = 2 / 2**5
    assert wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.0625)
    assert np.isnan(wilcoxon_p([0.0, 0.0, 0.0]))
    # d = [.25, .5, .25, .25, .25]: mean .3, var .0125; (1/5 + 1/4) * .0125 = .075**2, so t = 4
    d = [0.25, 0.5, 0.25, 0.25, 0.25]
    assert corrected_t_p(d, 0.25) == pytest.approx(0.016130089900092546)
    assert np.isnan(corrected_t_p([0.1, 0.1], 0.25))


def test_paired_comparison_hand_computed() -> None:
    """Model AUROC .75/1/.75/.75/.75 against .5 per fold; pooled: perfect against constant."""
    metrics = pd.concat(
        [_metrics("mcsp", [0.75, 1.0, 0.75, 0.75, 0.75]), _metrics("fc_logreg", [0.5] * 5)]
    )
    predictions = pd.concat([_predictions("mcsp", PERFECT), _predictions("fc_logreg", CONSTANT)])
    paired = paired_comparison(metrics, predictions, "fc_logreg", n_bootstrap=200, seed=0)
    assert len(paired) == 1
    row = paired.iloc[0]
    assert (row["model"], row["reference"], row["reference_experiment"]) == (
        "mcsp",
        "fc_logreg",
        "main",
    )
    assert row["delta_mean"] == pytest.approx(0.3)
    assert row["delta_sd"] == pytest.approx(np.sqrt(0.0125))
    assert row["folds_better"] == 5 and row["n_folds"] == 5 and row["n_seeds"] == 1
    assert row["model_auroc"] == pytest.approx(0.8) and row["reference_auroc"] == pytest.approx(0.5)
    # pooled: AUROC 1 against 0.5 in every stratified replicate
    assert row["n_subjects"] == 20
    assert row["delta_pooled"] == pytest.approx(0.5)
    assert row["ci_low"] == pytest.approx(0.5) and row["ci_high"] == pytest.approx(0.5)
    # 20 subjects, 4 per test fold: n_test / n_train = 4 / 16
    assert row["p_corrected_t"] == pytest.approx(0.016130089900092546)
    assert row["p_wilcoxon"] == pytest.approx(0.0625)
    text = paired_text(paired)
    assert "AUROC difference to fc_logreg — experiment main, task ASD" in text
    assert "+0.300" in text and "[95% CI +0.500, +0.500]" in text


def test_reference_from_another_experiment_and_seed_pairing() -> None:
    """Seeds pair with the reference's same seed; a reference run elsewhere is used and named."""
    model = _metrics("mcsp", [0.75] * 5, seeds=2)
    model.loc[model["seed"] == "1", "value"] = 1.0
    model["experiment"] = "spatial"
    reference = _metrics("fc_logreg", [0.5] * 5, seeds=2)
    reference.loc[reference["seed"] == "1", "value"] = 0.75
    pred_model = _predictions("mcsp", PERFECT, seeds=2).assign(experiment="spatial")
    pred_ref = _predictions("fc_logreg", PERFECT, seeds=2)
    paired = paired_comparison(
        pd.concat([model, reference]), pd.concat([pred_model, pred_ref]), n_bootstrap=100
    )
    row = paired.set_index("model").loc["mcsp"]
    assert row["reference_experiment"] == "main" and row["n_seeds"] == 2
    assert row["delta_mean"] == pytest.approx(0.25)  # (.75 - .5) and (1 - .75), paired by seed
    assert row["delta_pooled"] == pytest.approx(0.0)  # both perfect when pooled
    assert row["ci_low"] == row["ci_high"] == pytest.approx(0.0)


def test_no_reference_gives_empty_table() -> None:
    metrics = _metrics("mcsp", [0.75] * 5)
    paired = paired_comparison(metrics, _predictions("mcsp", PERFECT), "fc_logreg")
    assert paired.empty and "none" in paired_text(paired)


def test_fixed_reference_experiment_compares_the_reference_model_too() -> None:
    """reference_experiment main: a harmonised fc_logreg of experiment combat is compared with
    main's plain fc_logreg (and main's own fc_logreg is not compared with itself)."""
    plain = _metrics("fc_logreg", [0.5] * 5)
    harmonised = _metrics("fc_logreg", [0.75] * 5).assign(experiment="combat")
    predictions = pd.concat(
        [
            _predictions("fc_logreg", CONSTANT),
            _predictions("fc_logreg", PERFECT).assign(experiment="combat"),
        ]
    )
    metrics = pd.concat([plain, harmonised])
    paired = paired_comparison(metrics, predictions, n_bootstrap=100, reference_experiment="main")
    assert list(zip(paired["experiment"], paired["model"], strict=True)) == [
        ("combat", "fc_logreg")
    ]
    assert paired["delta_mean"].iloc[0] == pytest.approx(0.25)
    assert paired_comparison(metrics, predictions, reference_experiment="other").empty


def _window_predictions(
    model: str, scores: dict[str, list[float]], fold: str = "0"
) -> pd.DataFrame:
    """Two rows (windows) per subject; subject s has label 1 when its name starts with 'p'."""
    rows = [
        {
            "cohort": "c",
            "subject": subject,
            "sample_id": f"{subject}-{k}",
            "y": int(subject.startswith("p")),
            "score": value,
            "split": "test",
            "experiment": "main",
            "model": model,
            "task": "ASD",
            "fold": fold,
            "seed": "0",
        }
        for subject, values in scores.items()
        for k, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_blend_is_the_mean_rank_of_the_subject_scores() -> None:
    from mcsp.experiments import blend_predictions

    lr = _window_predictions("fc_logreg", {"p1": [0.9, 0.7], "p2": [0.2, 0.2], "n1": [0.3, 0.5]})
    net = _window_predictions("mcsp", {"p1": [0.1, 0.1], "p2": [0.8, 1.0], "n1": [0.4, 0.4]})
    other_fold = _window_predictions("fc_logreg", {"p1": [0.9, 0.9], "n1": [0.1, 0.1]}, fold="1")
    blended = blend_predictions(pd.concat([lr, net, other_fold]), {"both": ["fc_logreg", "mcsp"]})
    # subject means: lr p1 .8, p2 .2, n1 .4 -> ranks 3, 1, 2; mcsp .1, .9, .4 -> 1, 3, 2
    score = blended.set_index("subject")["score"]
    assert score.to_dict() == pytest.approx({"p1": 2 / 3, "p2": 2 / 3, "n1": 2 / 3})
    assert set(blended["fold"]) == {"0"}  # fold 1 lacks mcsp: no blend there
    assert (blended["model"] == "both").all() and list(blended.columns) == list(lr.columns)
    assert blended.set_index("subject")["y"].to_dict() == {"p1": 1, "p2": 1, "n1": 0}
    with pytest.raises(ValueError, match="already a model"):
        blend_predictions(pd.concat([lr, net]), {"mcsp": ["fc_logreg", "mcsp"]})
    with pytest.raises(ValueError, match="two or more"):
        blend_predictions(lr, {"x": ["fc_logreg", "fc_logreg"]})
