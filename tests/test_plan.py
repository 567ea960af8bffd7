"""What a study runs: experiments, pretraining variants, which pretraining a job starts from."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mcsp.config import validate
from mcsp.exceptions import ConfigError
from mcsp.plan import (
    BASELINE_MODALITIES,
    check_variants,
    job_settings,
    model_modalities,
    pretrain_job_config,
    pretraining_dir,
    variant_config,
    variant_names,
)


def _config(**evaluate: object) -> dict:
    return validate(
        {
            "pretrain": {
                "epochs": 3,
                "scope": "train_folds",
                "variants": {
                    "spatial": {"model": {"domains": ["spatial"]}},
                    "fmri": {"model": {"modalities": ["fmri"]}},
                    "contrastive": {"pretrain": {"weights": {"distillation": 0, "consistency": 0}}},
                    "natural": {"pretrain": {"pairs": ["natural", "fmri_only", "eeg_only"]}},
                },
            },
            "evaluate": {
                "experiments": {
                    "main": {"models": ["mcsp", "fc_logreg", "bandpower_logreg"]},
                    "dom_s": {"models": ["mcsp"], "pretrain_variant": "spatial"},
                    "fmri": {"models": ["mcsp", "mcsp_scratch"], "pretrain_variant": "fmri"},
                    "eeg_ft": {"models": ["mcsp"], "finetune": {"modalities": ["eeg"]}},
                    "all": {"models": ["mcsp"], "pretrain_scope": "all"},
                },
                **evaluate,
            },
        },
        "config",
        "test",
    )


def test_variants_merge_over_the_study_blocks() -> None:
    config = _config()
    check_variants(config)
    assert variant_names(config) == ["default", "spatial", "fmri", "contrastive", "natural"]
    default = variant_config(config, "default")
    assert "variants" not in default["pretrain"] and "scope" not in default["pretrain"]
    spatial = variant_config(config, "spatial")
    assert spatial["model"]["domains"] == ["spatial"]
    assert spatial["model"]["hidden"] == default["model"]["hidden"]
    assert spatial["pretrain"] == default["pretrain"]
    weights = variant_config(config, "contrastive")["pretrain"]["weights"]
    assert weights == {**default["pretrain"]["weights"], "distillation": 0, "consistency": 0}
    assert variant_config(config, "natural")["pretrain"]["epochs"] == 3


def test_adding_a_variant_leaves_the_others_settings_unchanged() -> None:
    """Snakemake reruns a pretraining whose params changed: a new variant must not touch them."""
    before = _config()
    after = validate(
        {**before, "pretrain": {**before["pretrain"], "variants": {"x": {"model": {"hidden": 8}}}}},
        "config",
        "test",
    )
    for variant in ("default",):
        assert pretrain_job_config(before, variant, "all") == pretrain_job_config(
            after, variant, "all"
        )


def test_jobs_start_from_their_variant_and_fold() -> None:
    config = _config()
    assert pretraining_dir(config, "main", 3) == "default/fold-3"
    assert pretraining_dir(config, "dom_s", 0) == "spatial/fold-0"
    assert pretraining_dir(config, "all", 2) == "default/all"
    job = pretrain_job_config(config, "spatial", "fold-1")
    assert job["pretrain"]["exclude_folds"] == [1] and job["model"]["domains"] == ["spatial"]
    assert pretrain_job_config(config, "spatial", "all")["pretrain"]["exclude_folds"] == []
    scratch = job_settings(config, "fmri", "mcsp_scratch")
    assert scratch["model"]["modalities"] == ["fmri"]
    # a variant pretraining fewer modalities is fine-tuned on those
    assert scratch["finetune"]["modalities"] == ["fmri"]
    assert job_settings(config, "main", "mcsp")["finetune"]["modalities"] is None


def test_models_without_a_modality_of_the_study_are_not_applicable() -> None:
    config = _config()
    fmri_only = {"fmri"}
    assert model_modalities(config, "main", "bandpower_logreg", fmri_only) == set()
    assert model_modalities(config, "main", "fc_logreg", fmri_only) == {"fmri"}
    assert model_modalities(config, "eeg_ft", "mcsp", fmri_only) == set()
    assert model_modalities(config, "fmri", "mcsp", {"fmri", "eeg"}) == {"fmri"}


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ({"x": {"model": {"domains": ["space"]}}}, r"(?s)pretrain.variants.x .*model.domains.0"),
        ({"x": {"pretrain": {"scope": "all"}}}, r"pretrain.variants.x.pretrain sets scope"),
        ({"x": {"pretrain": {"weights": {"contrast": 1}}}}, r"did you mean"),
    ],
)
def test_bad_variants_name_the_key_and_the_fix(variants: dict, message: str) -> None:
    config = validate({"pretrain": {"variants": variants}}, "config", "test")
    with pytest.raises(ConfigError, match=message):
        check_variants(config)


def test_unknown_variant_and_reserved_name() -> None:
    config = _config()
    config["evaluate"]["experiments"]["typo"] = {"pretrain_variant": "spatail"}
    with pytest.raises(ConfigError, match="'spatail' is not in pretrain.variants"):
        check_variants(config)
    with pytest.raises(ConfigError, match="pretrain.variants"):
        validate({"pretrain": {"variants": {"default": {}}}}, "config", "test")


def test_baseline_modalities_match_the_baselines() -> None:
    from mcsp.baselines import BASELINES

    assert {name: b.modality for name, b in BASELINES.items()} == BASELINE_MODALITIES


def test_planning_does_not_import_torch() -> None:
    """The workflow plans its DAG with mcsp.plan: importing torch there costs seconds per run."""
    code = "import sys, mcsp.plan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
