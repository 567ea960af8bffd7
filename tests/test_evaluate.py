"""The evaluation protocol: metrics against scikit-learn and by hand, subject scores, fold roles,
result tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    recall_score,
    roc_auc_score,
)

from mcsp.evaluate import (
    METRICS,
    binary_metrics,
    evaluation_split,
    labelled,
    subject_scores,
    summarise,
    tidy_metrics,
)
from mcsp.exceptions import McspError


def test_binary_metrics_by_hand_and_sklearn() -> None:
    y = np.array([1, 1, 1, 0, 0])
    score = np.array([0.9, 0.6, 0.4, 0.3, 0.7])
    m = binary_metrics(y, score)
    assert tuple(m) == METRICS
    # predictions 1 1 0 0 1: TP 2, FN 1, TN 1, FP 1; 4 of 6 positive-negative pairs ranked right
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1 / 2)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["balanced_accuracy"] == pytest.approx(7 / 12)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["auroc"] == pytest.approx(4 / 6)

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    score = np.clip(0.3 * y + rng.uniform(0, 0.7, 40), 0, 1)
    pred = (score >= 0.3).astype(int)
    m = binary_metrics(y, score, threshold=0.3)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, score))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(f1_score(y, pred))


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_binary_metrics_one_class_and_multiclass() -> None:
    m = binary_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert math.isnan(m["auroc"]) and math.isnan(m["specificity"])
    assert m["sensitivity"] == pytest.approx(2 / 3)

    y = np.array([0, 1, 2, 0, 1, 2, 2])
    probs = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.2, 0.5, 0.3],
            [0.1, 0.3, 0.6],
            [0.3, 0.4, 0.3],
            [0.5, 0.3, 0.2],
            [0.2, 0.2, 0.6],
            [0.1, 0.6, 0.3],
        ]
    )
    m = binary_metrics(y, probs)
    pred = probs.argmax(axis=1)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred)) == pytest.approx(4 / 7)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert math.isnan(m["sensitivity"]) and math.isnan(m["specificity"])
    # a class absent: one-vs-rest AUROC over the classes present
    present = y < 2
    m = binary_metrics(y[present], probs[present])
    expected = np.mean([roc_auc_score(y[present] == k, probs[present, k]) for k in (0, 1)])
    assert m["auroc"] == pytest.approx(expected)


def test_subject_scores_average_per_subject() -> None:
    predictions = pd.DataFrame(
        {
            "cohort": ["c", "c", "c", "d"],
            "subject": ["01", "01", "02", "01"],
            "y": [1, 1, 0, 0],
            "score": [0.2, 0.6, 0.1, 0.9],
        }
    )
    out = subject_scores(predictions)
    assert list(out.columns) == ["cohort", "subject", "y", "score", "n"]
    assert out["score"].tolist() == pytest.approx([0.4, 0.1, 0.9])
    assert out["n"].tolist() == [2, 1, 1] and out["y"].tolist() == [1, 0, 0]

    multi = predictions.drop(columns="score").assign(score_0=[0.5, 0.1, 1, 0], score_1=0.0)
    multi["score_2"] = 1 - multi["score_0"]
    out = subject_scores(multi)
    assert out[["score_0", "score_1", "score_2"]].to_numpy()[0] == pytest.approx([0.3, 0, 0.7])

    predictions.loc[1, "y"] = 0
    with pytest.raises(ValueError, match="c/01"):
        subject_scores(predictions)


def test_evaluation_split_roles() -> None:
    folds = pd.Series([0, 1, 2, 3, 0, 1, 2, 3, 3])
    train, val, test = evaluation_split(folds, 3, 4)
    assert (train.astype(int) + val + test == 1).all()
    assert set(folds[test]) == {3} and set(folds[val]) == {0} and set(folds[train]) == {1, 2}
    train, val, test = evaluation_split(folds, 1, 4)
    assert set(folds[test]) == {1} and set(folds[val]) == {2} and set(folds[train]) == {0, 3}
    with pytest.raises(ValueError, match="at least 3 folds"):
        evaluation_split(pd.Series([0, 1]), 0, 2)
    with pytest.raises(ValueError, match="outside"):
        evaluation_split(folds, 4, 4)


def test_labelled_rows_and_refusals() -> None:
    index = pd.DataFrame(
        {
            "sample_id": list("abcd"),
            "subject": ["1", "2", "3", "4"],
            "site": "S",
            "ASD": pd.array([1, None, 0, 1], dtype="Int64"),
            "sex": pd.array([1, 1, None, 1], dtype="Int64"),
            "fold": [0, 1, 2, 0],
        }
    )
    assert labelled(index, "ASD")["sample_id"].tolist() == ["a", "c", "d"]
    with pytest.raises(McspError, match=r"no label 'age' \(labels: ASD, sex\)"):
        labelled(index, "age")
    with pytest.raises(McspError, match="two or more"):
        labelled(index, "sex")


def test_tidy_metrics_and_summary() -> None:
    tables = [
        tidy_metrics(
            {"auroc": auroc, "accuracy": acc},
            experiment="e1",
            model="fc_logreg",
            task="ASD",
            fold=fold,
            seed=0,
        )
        for fold, auroc, acc in ((0, 0.7, 0.6), (1, 0.8, 0.6))
    ]
    long = pd.concat(tables, ignore_index=True)
    assert list(long.columns) == ["experiment", "model", "task", "fold", "seed", "metric", "value"]
    assert len(long) == 4 and set(long["metric"]) == {"auroc", "accuracy"}
    with pytest.raises(ValueError, match="unknown keys"):
        tidy_metrics({"auroc": 0.5}, run=1)

    summary = summarise(long)
    auroc = summary[summary["metric"] == "auroc"].iloc[0]
    assert auroc["mean"] == pytest.approx(0.75)
    assert auroc["sd"] == pytest.approx(math.sqrt(0.005))  # (0.05² + 0.05²) / 1
    assert auroc["n"] == 2 and auroc["mean ± sd"] == "0.750 ± 0.071"
    accuracy = summary[summary["metric"] == "accuracy"].iloc[0]
    assert accuracy["mean ± sd"] == "0.600 ± 0.000"
    single = summarise(tables[0])
    assert math.isnan(single["sd"].iloc[0]) and single["mean ± sd"].iloc[0] == "0.700"
    assert list(summary.columns) == [
        "experiment",
        "model",
        "task",
        "metric",
        "mean",
        "sd",
        "n",
        "mean ± sd",
    ]


def test_experiment_settings_override_the_defaults() -> None:
    from mcsp.config import validate
    from mcsp.plan import experiment_settings

    config = validate(
        {
            "finetune": {"epochs": 7},
            "evaluate": {
                "tasks": ["ASD"],
                "models": ["fc_logreg"],
                "experiments": {
                    "main": {},
                    "few": {
                        "models": ["mcsp"],
                        "tasks": ["MDD"],
                        "finetune": {"label_fraction": 0.2},
                        "seeds": 1,
                    },
                },
                "seeds": 3,
            },
        },
        "config",
        "test",
    )
    main = experiment_settings(config, "main")
    assert main["seeds"] == 3 and experiment_settings(config, "few")["seeds"] == 1
    assert main["models"] == ["fc_logreg"] and main["tasks"] == ["ASD"]
    assert main["finetune"]["epochs"] == 7 and main["finetune"]["label_fraction"] == 1.0
    few = experiment_settings(config, "few")
    assert few["models"] == ["mcsp"] and few["tasks"] == ["MDD"]
    assert few["finetune"]["epochs"] == 7 and few["finetune"]["label_fraction"] == 0.2
    with pytest.raises(KeyError, match="not in evaluate.experiments"):
        experiment_settings(config, "other")


def test_early_stopping_keeps_the_best_epoch() -> None:
    import torch

    from mcsp.evaluate import EarlyStopping

    net = torch.nn.Linear(1, 1, bias=False)
    stopping = EarlyStopping(patience=2)
    scores = [(0.6, -1.0), (0.7, -2.0), (0.7, -1.5), (0.65, -0.1), (0.69, 0.0)]
    stopped = None
    for epoch, score in enumerate(scores):
        net.weight.data.fill_(epoch)
        if stopping.step(epoch, score, net):
            stopped = epoch
            break
    assert stopped == 4 and stopping.best_epoch == 2  # the loss broke the AUROC tie
    stopping.restore(net)
    assert float(net.weight) == 2.0
    assert stopping.selection("auroc", 5) == {
        "criterion": "auroc", "best": 0.7, "best_epoch": 2, "epochs_run": 5
    }  # fmt: skip


def test_a_one_class_test_fold_says_why_its_auroc_is_missing() -> None:
    import pandas as pd

    from mcsp.experiments import one_class_note

    assert one_class_note(pd.Series([0, 1, 1])) == ""
    note = one_class_note(pd.Series([1, 1, 1]))
    assert "hold class 1 only" in note and "(3)" in note
