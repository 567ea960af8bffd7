"""Fine-tuning through the evaluation folds: modes, subsets, label fraction, determinism."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mcsp.config import validate
from mcsp.evaluate import METRICS, binary_metrics, subject_scores
from mcsp.exceptions import ConfigError, McspError
from mcsp.experiments import merge_metrics, predictions_path, run_job, summary_table, write_job
from mcsp.finetune import finetune
from mcsp.store import read_store_table
from mcsp.train import pretrain

from .test_baselines import store  # noqa: F401  (the module-scoped store fixture)
from .test_train import MODEL

FAST = {"epochs": 3, "patience": 2, "batch_size": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def pretrained(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("finetune_pretrain")
    config = {"model": MODEL, "pretrain": {"epochs": 2, "batch_size": 8, "num_workers": 0}}
    pretrain(store, out, config)
    return out / "model.pt"


def _test_subjects(store: Path, fold: int) -> set[str]:  # noqa: F811
    index = read_store_table(store, "index")
    return set(index.loc[(index["fold"] == fold) & index["ASD"].notna(), "subject"])


@pytest.mark.parametrize("mode", ["full", "linear", "scratch"])
def test_modes_score_the_test_fold_only(store: Path, pretrained: Path, mode: str) -> None:  # noqa: F811
    out = finetune(
        store,
        "ASD",
        1,
        seed=0,
        pretrained=pretrained,
        settings={**FAST, "mode": mode},
        model_settings=MODEL,
    )
    assert set(out["subject"]) == _test_subjects(store, 1)
    assert out["score"].between(0, 1).all() and set(out["split"]) == {"test"}
    assert out.attrs["validation_fold"] == 2 and out.attrs["mode"] == mode
    assert 1 <= out.attrs["selection"]["epochs_run"] <= FAST["epochs"]
    metrics = binary_metrics(*subject_scores(out)[["y", "score"]].T.to_numpy())
    assert 0 <= metrics["auroc"] <= 1


def test_prediction_encodes_shared_samples_once(store: Path, pretrained: Path) -> None:  # noqa: F811
    from mcsp.finetune import Classifier, _predict
    from mcsp.store import PairDataset, collate_pairs
    from mcsp.train import load_pretrained

    dataset = PairDataset(store)
    assert dataset.pairs["fmri_sample"].duplicated().any()  # fMRI samples shared by pairs
    model = Classifier(load_pretrained(pretrained), 2, ["fmri", "eeg"], ["spatial", "temporal"])
    model.eval()
    with torch.no_grad():
        every_pair = model(collate_pairs([dataset[i] for i in range(len(dataset))]), "cpu")
    torch.testing.assert_close(_predict(model, dataset, 5, torch.device("cpu")), every_pair)
    features = _predict(model, dataset, 5, torch.device("cpu"), features=True)
    assert features.shape == (len(dataset), 2 * MODEL["hidden"])
    assert _predict(model, dataset.subset(np.zeros(len(dataset), bool)), 5, "cpu").numel() == 0


def test_subsets_and_determinism(store: Path, pretrained: Path) -> None:  # noqa: F811
    settings = {**FAST, "mode": "full", "modalities": ["fmri"], "domains": ["spatial"]}
    first = finetune(store, "ASD", 0, seed=3, pretrained=pretrained, settings=settings)
    again = finetune(store, "ASD", 0, seed=3, pretrained=pretrained, settings=settings)
    assert first.attrs["modalities"] == ["fmri"] and first.attrs["domains"] == ["spatial"]
    assert first["sample_id"].str.contains("_task-").all()  # fMRI samples, not pairs
    np.testing.assert_array_equal(first["score"], again["score"])
    other = finetune(store, "ASD", 0, seed=4, pretrained=pretrained, settings=settings)
    assert not np.array_equal(first["score"], other["score"])


def test_refit_trains_on_validation_folds_too(store: Path, pretrained: Path) -> None:  # noqa: F811
    plain = finetune(store, "ASD", 0, pretrained=pretrained, settings=FAST)
    refit = finetune(store, "ASD", 0, pretrained=pretrained, settings={**FAST, "refit": True})
    assert refit.attrs["refit"] and not plain.attrs["refit"]
    assert refit.attrs["training_subjects"] > plain.attrs["training_subjects"]
    assert refit.attrs["selection"] == plain.attrs["selection"]  # the same epoch chosen
    assert set(refit["subject"]) == set(plain["subject"]) == _test_subjects(store, 0)
    assert not np.allclose(refit["score"], plain["score"])
    again = finetune(store, "ASD", 0, pretrained=pretrained, settings={**FAST, "refit": True})
    np.testing.assert_array_equal(refit["score"], again["score"])


def test_label_fraction_uses_fewer_subjects(store: Path, pretrained: Path) -> None:  # noqa: F811
    full = finetune(store, "ASD", 0, pretrained=pretrained, settings=FAST)
    few = finetune(store, "ASD", 0, pretrained=pretrained, settings={**FAST, "label_fraction": 0.2})
    assert few.attrs["training_subjects"] == 2 < full.attrs["training_subjects"]


def test_errors(store: Path, pretrained: Path) -> None:  # noqa: F811
    with pytest.raises(McspError, match="needs a pretrained model"):
        finetune(store, "ASD", 0, settings=FAST)
    with pytest.raises(McspError, match="ADHD"):
        finetune(store, "ADHD", 0, pretrained=pretrained, settings=FAST)


def test_jobs_merge_into_tidy_tables(store: Path, pretrained: Path, tmp_path: Path) -> None:  # noqa: F811
    config = validate(
        {"model": MODEL, "finetune": FAST, "evaluate": {"tasks": ["ASD"], "seeds": 1}},
        "config",
        "test",
    )
    paths = []
    for model in ("mcsp_linear", "fc_logreg"):
        for fold in range(3):
            predictions, metrics = run_job(store, model, "ASD", fold, 0, config, "main", pretrained)
            assert set(metrics["metric"]) == set(METRICS) and (metrics["fold"] == fold).all()
            paths.append(tmp_path / f"{model}_fold-{fold}_seed-0_metrics.tsv")
            write_job(predictions, metrics, paths[-1])
    metrics, summary, paired = merge_metrics(paths)
    pooled = metrics[metrics["fold"] == "pooled"].set_index(["model", "metric"])["value"]
    fc = pd.concat(
        pd.read_csv(predictions_path(p), sep="\t", dtype={"subject": str})
        for p in paths
        if "fc_logreg" in p.name
    )
    by_subject = subject_scores(fc)
    assert len(by_subject) == 15  # every labelled subject scored once, in its test fold
    assert pooled["fc_logreg", "auroc"] == pytest.approx(
        binary_metrics(by_subject["y"], by_subject["score"])["auroc"]
    )
    assert pooled["fc_logreg", "auroc"] > 0.8  # the planted fMRI effect
    per_fold = summary[summary["scope"] == "per fold"].set_index(["model", "metric"])
    assert per_fold.loc[("fc_logreg", "auroc"), "n"] == 3
    assert {"mean ± sd", "scope"} <= set(summary.columns)


def test_seed_ensemble_and_paired_rows(
    store: Path,  # noqa: F811
    pretrained: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two seeds: ``mcsp_linear+ens`` scores the mean of the seeds' subject scores and is compared
    with ``fc_logreg+ens``; each seed's model is compared with fc_logreg."""
    config = validate(
        {"model": MODEL, "finetune": FAST, "evaluate": {"tasks": ["ASD"], "seeds": 2}},
        "config",
        "test",
    )
    paths = []
    for model in ("mcsp_linear", "fc_logreg"):
        for fold in range(3):
            for seed in range(2):
                job = run_job(store, model, "ASD", fold, seed, config, "main", pretrained)
                paths.append(tmp_path / model / f"fold-{fold}_seed-{seed}_metrics.tsv")
                write_job(*job, paths[-1])
    record = json.loads((tmp_path / "mcsp_linear" / "fold-0_seed-1_job.json").read_text())
    assert record["pretrained"] == str(pretrained) and record["seed"] == 1
    metrics, summary, paired = merge_metrics(paths)
    ens = metrics[(metrics["model"] == "mcsp_linear+ens") & (metrics["metric"] == "auroc")]
    assert set(ens["fold"]) == {"0", "1", "2", "pooled"} and set(ens["seed"]) == {"ens"}
    frames = [pd.read_csv(predictions_path(p), sep="\t", dtype={"subject": str}) for p in paths]
    linear = pd.concat(f for f in frames if (f["model"] == "mcsp_linear").all())
    by_seed = [subject_scores(part) for _, part in linear.groupby("seed")]
    mean = by_seed[0].assign(score=(by_seed[0]["score"] + by_seed[1]["score"]) / 2)
    pooled = ens.loc[ens["fold"] == "pooled", "value"].iloc[0]
    assert pooled == pytest.approx(binary_metrics(mean["y"], mean["score"])["auroc"])
    assert "mcsp_linear+ens" in set(summary["model"])
    rows = paired.set_index("model")
    assert set(rows.index) == {"mcsp_linear", "mcsp_linear+ens"}
    assert rows.loc["mcsp_linear+ens", "reference"] == "fc_logreg+ens"
    assert rows.loc["mcsp_linear", "n_seeds"] == 2 and rows.loc["mcsp_linear", "n_folds"] == 3
    off = merge_metrics(paths, {"seed_ensemble": False})[0]
    assert not off["model"].str.endswith("+ens").any()
    blended = merge_metrics(paths, {"blends": {"lin_fc": ["mcsp_linear", "fc_logreg"]}})
    assert {"lin_fc", "lin_fc+ens"} <= set(blended[0]["model"])
    assert {"lin_fc", "lin_fc+ens"} <= set(blended[2]["model"])  # compared with fc_logreg
    summary.to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    paired.to_csv(tmp_path / "paired.tsv", sep="\t", index=False)
    from mcsp.cli import main

    assert main(["summary", str(tmp_path / "summary.tsv")]) == 0
    printed = capsys.readouterr().out
    assert "mcsp_linear+ens" in printed
    assert "AUROC difference to fc_logreg — experiment main, task ASD" in printed


def test_unusable_job_recorded_not_fatal(store: Path, pretrained: Path) -> None:  # noqa: F811
    config = validate({"model": MODEL, "finetune": FAST}, "config", "test")
    predictions, metrics = run_job(store, "fc_logreg", "ADHD", 0, 0, config)
    assert predictions.empty and metrics["value"].isna().all()
    assert "ADHD" in metrics["note"].iloc[0]
    with pytest.raises(McspError, match="ADHD"):
        run_job(store, "fc_logreg", "ADHD", 0, 0, {**config, "strict": True})


def test_summary_table_and_empty_merge(store: Path, pretrained: Path, tmp_path: Path) -> None:  # noqa: F811
    config = validate({"model": MODEL, "finetune": FAST}, "config", "test")
    path = tmp_path / "fold-0_seed-0_metrics.tsv"
    write_job(*run_job(store, "fc_logreg", "ADHD", 0, 0, config), path)
    metrics, summary, paired = merge_metrics([path])
    assert paired.empty  # no prediction to compare
    assert metrics["value"].isna().all() and set(summary["scope"]) == {"per fold"}
    summary.to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    text = summary_table(tmp_path / "summary.tsv")
    assert "auroc — experiment main, per fold" in text and "fc_logreg" in text
    with pytest.raises(McspError, match="metric 'auc'"):
        summary_table(tmp_path / "summary.tsv", "auc")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_full_finetuning_on_cuda(store: Path, pretrained: Path) -> None:  # noqa: F811
    out = finetune(
        store, "ASD", 1, seed=0, pretrained=pretrained,
        settings={**FAST, "mode": "full", "device": "cuda"}, model_settings=MODEL,
    )  # fmt: skip
    assert set(out["subject"]) == _test_subjects(store, 1)
    assert out["score"].between(0, 1).all() and out.attrs["mode"] == "full"


def test_fmri_only_store_by_default(tmp_path: Path) -> None:
    """The default modalities are the store's: an fMRI-only cohort (ABIDE) needs no setting."""
    from .test_train import _build

    fmri_store = _build(tmp_path, eeg=False, folds=3)
    out = finetune(
        fmri_store, "ASD", 0, seed=0, settings={**FAST, "mode": "scratch"}, model_settings=MODEL
    )
    assert out.attrs["modalities"] == ["fmri"] and out["sample_id"].str.contains("_task-").all()


def test_grid_chosen_on_the_validation_fold(store: Path, pretrained: Path) -> None:  # noqa: F811
    grid = {"weight_decay": [0.0, 0.5], "dropout": [0.1]}
    out = finetune(store, "ASD", 0, pretrained=pretrained, settings={**FAST, "grid": grid})
    trials = out.attrs["grid"]
    assert [t["params"] for t in trials] == [
        {"weight_decay": 0.0, "dropout": 0.1},
        {"weight_decay": 0.5, "dropout": 0.1},
    ]
    chosen = max(trials, key=lambda t: t["best"])
    assert out.attrs["hyperparameters"] == chosen["params"]
    assert out.attrs["selection"]["best"] == chosen["best"][0]
    with pytest.raises(McspError, match="cannot be searched"):
        finetune(store, "ASD", 0, pretrained=pretrained, settings={**FAST, "grid": {"epochs": [2]}})


STUDENT = {**FAST, "domains": ["spatial"]}


@pytest.mark.parametrize(("mode", "refit"), [("full", False), ("linear", True), ("scratch", True)])
def test_teacher_distils_into_the_student(
    store: Path,  # noqa: F811
    pretrained: Path,
    mode: str,
    refit: bool,
) -> None:
    """The teacher (from scratch too in scratch mode) is fine-tuned first; the job scores the
    student on the test fold only and records the teacher."""
    teacher = {"domains": ["spatial", "temporal", "frequency"], "weight": 0.5, "temperature": 2.0}
    settings = {**STUDENT, "mode": mode, "refit": refit, "teacher": teacher}
    out = finetune(store, "ASD", 1, pretrained=pretrained, settings=settings, model_settings=MODEL)
    assert out.attrs["refit"] is refit
    assert set(out["subject"]) == _test_subjects(store, 1) and set(out["split"]) == {"test"}
    assert out["score"].between(0, 1).all() and out.attrs["domains"] == ["spatial"]
    record = out.attrs["teacher"]
    assert record["domains"] == teacher["domains"]
    assert (record["weight"], record["temperature"]) == (0.5, 2.0)
    assert 1 <= record["selection"]["epochs_run"] <= FAST["epochs"]
    assert 0 <= record["selection"]["best"] <= 1  # the teacher's validation AUROC
    assert out.attrs["selection"]["criterion"].startswith("subject_auroc")  # the student's own
    json.dumps(out.attrs)  # the job record stays writable


def test_teacher_weight_zero_is_plain_finetuning(store: Path, pretrained: Path) -> None:  # noqa: F811
    plain = finetune(store, "ASD", 0, seed=2, pretrained=pretrained, settings=STUDENT)
    assert plain.attrs["teacher"] is None
    runs = {
        w: finetune(
            store,
            "ASD",
            0,
            seed=2,
            pretrained=pretrained,
            settings={**STUDENT, "teacher": {"domains": ["spatial", "temporal"], "weight": w}},
        )
        for w in (0.0, 0.5)
    }
    np.testing.assert_array_equal(runs[0.0]["score"], plain["score"])
    assert runs[0.0].attrs["history"] == plain.attrs["history"]
    assert not np.allclose(runs[0.5]["score"], plain["score"])
    assert runs[0.5].attrs["teacher"]["temperature"] == 2.0  # the schema's default


def test_teacher_needs_more_domains(store: Path, pretrained: Path) -> None:  # noqa: F811
    for student, teacher in ((["spatial"], ["spatial"]), (["spatial", "temporal"], ["temporal"])):
        settings = {**FAST, "domains": student, "teacher": {"domains": teacher}}
        with pytest.raises(McspError, match="teacher must use more domains"):
            finetune(store, "ASD", 0, pretrained=pretrained, settings=settings)


def test_teacher_schema_defaults() -> None:
    off = validate({}, "config", "t")["finetune"]["teacher"]
    assert off == {"domains": None, "weight": 0.5, "temperature": 2.0}  # no teacher
    config = validate(
        {"finetune": {"teacher": {"domains": ["spatial", "temporal"]}}}, "config", "t"
    )
    assert config["finetune"]["teacher"] == {
        "domains": ["spatial", "temporal"],
        "weight": 0.5,
        "temperature": 2.0,
    }
    for bad in ({"weight": 1.5}, {"temperature": 0}, {"domains": []}, {"alpha": 1}):
        with pytest.raises(ConfigError, match="teacher"):
            validate({"finetune": {"teacher": bad}}, "config", "t")


def test_job_settings_hold_only_what_the_job_uses() -> None:
    from mcsp.experiments import job_settings

    base = {"evaluate": {"experiments": {"main": {}}, "baselines": {"fc_logreg": {"c": [1.0]}}}}
    config = validate(base, "config", "test")
    grown = copy.deepcopy(base)
    grown["evaluate"]["experiments"]["more"] = {"models": ["eegnet"]}
    grown["evaluate"]["blends"] = {"both": ["fc_logreg", "mcsp"]}
    grown["evaluate"]["seeds"] = 3
    grown = validate(grown, "config", "test")
    for model in ("fc_logreg", "mcsp"):  # adding an experiment, a blend or seeds changes nothing
        assert job_settings(config, "main", model) == job_settings(grown, "main", model)
    assert job_settings(config, "main", "fc_logreg") == {"baseline": {"c": [1.0]}, "strict": False}
    assert set(job_settings(config, "main", "mcsp")) == {"model", "finetune", "strict"}
