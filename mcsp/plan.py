"""What a study runs, read from its validated config without importing torch: the experiments'
settings, the pretraining variants and which pretraining each evaluation job starts from.

The workflow calls these when it builds the DAG, the jobs call them again; both must agree, so
they live here once.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from mcsp.config import validate
from mcsp.exceptions import ConfigError, McspError

MCSP_MODELS = {"mcsp": "full", "mcsp_linear": "linear", "mcsp_scratch": "scratch"}
# the modality each baseline reads (mcsp.baselines.BASELINES, kept equal by a test)
BASELINE_MODALITIES = {
    "fc_logreg": "fmri",
    "fc_svm": "fmri",
    "bandpower_logreg": "eeg",
    "eegnet": "eeg",
    "brainnetcnn": "fmri",
}
DEFAULT_VARIANT = "default"
# pretrain keys a variant may not change: they say which pretrainings exist, not how one runs
_FIXED_PRETRAIN_KEYS = ("scope", "variants")


def merge(defaults: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """``defaults`` updated by ``given``, nested dicts merged key by key."""
    out = copy.deepcopy(dict(defaults))
    for key, value in (given or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def experiment_settings(config: Mapping[str, Any], experiment: str) -> dict[str, Any]:
    """``{"models", "tasks", "finetune", "baselines", "pretrain_scope", "pretrain_variant",
    "seeds"}`` of an experiment: its own keys over the config's.

    ``tasks`` is None when neither the experiment nor ``evaluate.tasks`` lists them (every label
    of the study's cohorts, which only the workflow knows).
    """
    spec = config["evaluate"]["experiments"].get(experiment)
    if spec is None:
        raise KeyError(f"experiment {experiment!r} is not in evaluate.experiments")
    return {
        "models": list(spec.get("models") or config["evaluate"]["models"]),
        "tasks": spec.get("tasks") or config["evaluate"].get("tasks"),
        "finetune": merge(config.get("finetune") or {}, spec.get("finetune")),
        "baselines": merge(config["evaluate"].get("baselines") or {}, spec.get("baselines")),
        "pretrain_scope": spec.get("pretrain_scope")
        or (config.get("pretrain") or {}).get("scope", "all"),
        "pretrain_variant": spec.get("pretrain_variant") or DEFAULT_VARIANT,
        "seeds": int(spec.get("seeds") or config["evaluate"].get("seeds", 1)),
    }


def variant_names(config: Mapping[str, Any]) -> list[str]:
    """``default`` and every name of ``pretrain.variants``."""
    return [DEFAULT_VARIANT, *((config.get("pretrain") or {}).get("variants") or {})]


def variant_config(config: Mapping[str, Any], variant: str) -> dict[str, Any]:
    """``{"model", "pretrain"}`` of a pretraining variant: its overrides merged over the study's
    validated blocks (``scope`` and ``variants`` removed). :func:`check_variants`, run once when
    the workflow or ``mcsp config check`` starts, validates the merged blocks; this function is
    called for every job and only merges.

    Raises:
        ConfigError: an unknown variant, or a variant that changes scope or variants.
    """
    pretrain = dict(config.get("pretrain") or {})
    variants = pretrain.get("variants") or {}
    if variant != DEFAULT_VARIANT and variant not in variants:
        raise ConfigError(
            f"pretraining variant {variant!r} is not in pretrain.variants (variants: "
            f"{', '.join(variant_names(config))}). Add it there or fix the experiment's "
            "pretrain_variant."
        )
    spec = variants.get(variant) or {}
    fixed = sorted(set(spec.get("pretrain") or {}) & set(_FIXED_PRETRAIN_KEYS))
    if fixed:
        raise ConfigError(
            f"pretrain.variants.{variant}.pretrain sets {', '.join(fixed)}: a variant cannot; set "
            "the scope per experiment (evaluate.experiments.<name>.pretrain_scope)."
        )
    base = {k: v for k, v in pretrain.items() if k not in _FIXED_PRETRAIN_KEYS}
    return {
        "model": merge(config.get("model") or {}, spec.get("model")),
        "pretrain": merge(base, spec.get("pretrain")),
    }


def check_variants(config: Mapping[str, Any]) -> None:
    """Every variant merges into blocks the config schema accepts, and every experiment's
    variant exists.

    Raises:
        ConfigError: the first problem, naming ``pretrain.variants.<variant>`` or the experiment,
            the key and the fix.
    """
    for variant in variant_names(config):
        merged = variant_config(config, variant)
        if variant != DEFAULT_VARIANT:
            validate(
                merged,
                "config",
                f"pretrain.variants.{variant} (merged over the pretrain and model blocks)",
            )
    for experiment in config["evaluate"]["experiments"]:
        name = experiment_settings(config, experiment)["pretrain_variant"]
        if name not in variant_names(config):
            raise ConfigError(
                f"evaluate.experiments.{experiment}.pretrain_variant {name!r} is not in "
                f"pretrain.variants (variants: {', '.join(variant_names(config))}). Add it or "
                "fix the name."
            )


def job_settings(config: Mapping[str, Any], experiment: str, model: str) -> dict[str, Any]:
    """What one evaluation job of ``model`` in ``experiment`` uses, and nothing else: the rule's
    params, so that adding a model, an experiment or a blend leaves finished jobs up to date.

    MCSP models: ``{"model", "finetune", "strict"}`` (the experiment's fine-tuning settings and
    its pretraining variant's model block, which ``mcsp_scratch`` builds); baselines:
    ``{"baseline", "strict"}`` (the experiment's overrides of that baseline's defaults).
    """
    spec = experiment_settings(config, experiment)
    strict = bool(config.get("strict", False))
    if model in MCSP_MODELS:
        name = spec["pretrain_variant"]
        variant = variant_config(config, name)
        finetune = spec["finetune"]
        overrides = (config["pretrain"].get("variants") or {}).get(name) or {}
        if "modalities" in (overrides.get("model") or {}) and not finetune.get("modalities"):
            # a variant that pretrains fewer modalities is fine-tuned on those
            finetune = {**finetune, "modalities": variant["model"]["modalities"]}
        return {"model": variant["model"], "finetune": finetune, "strict": strict}
    return {"baseline": spec["baselines"].get(model), "strict": strict}


def pretraining_name(scope: str, fold: int) -> str:
    """The pretraining a job of test fold ``fold`` starts from: ``all`` or ``fold-<fold>``."""
    if scope not in ("all", "train_folds"):
        raise McspError(f"pretrain scope {scope!r}: use all or train_folds.")
    return "all" if scope == "all" else f"fold-{int(fold)}"


def pretraining_dir(config: Mapping[str, Any], experiment: str, fold: int) -> str:
    """``<variant>/<all|fold-K>``: the folder under ``results/pretrain`` a job of ``experiment``
    on test fold ``fold`` starts from."""
    spec = experiment_settings(config, experiment)
    return f"{spec['pretrain_variant']}/{pretraining_name(spec['pretrain_scope'], fold)}"


def pretrain_job_config(config: Mapping[str, Any], variant: str, scope: str) -> dict[str, Any]:
    """The settings of pretraining ``<variant>/<scope>``: the variant's blocks, and for
    ``fold-K`` test fold K's subjects left out (added to ``pretrain.exclude_folds``)."""
    settings = variant_config(config, variant)
    if scope != "all":
        fold = int(scope.removeprefix("fold-"))
        excluded = set(settings["pretrain"]["exclude_folds"]) | {fold}
        settings["pretrain"]["exclude_folds"] = sorted(excluded)
    return settings


def model_modalities(
    config: Mapping[str, Any], experiment: str, model: str, modalities: Iterable[str]
) -> set[str]:
    """The modalities ``model`` of ``experiment`` would use on a study with ``modalities``:
    a baseline its own one; MCSP those of its variant's model and fine-tuning settings."""
    have = set(modalities)
    if model not in MCSP_MODELS:
        return have & {BASELINE_MODALITIES[model]}
    spec = experiment_settings(config, experiment)
    wanted = set(variant_config(config, spec["pretrain_variant"])["model"]["modalities"])
    if spec["finetune"].get("modalities"):
        wanted &= set(spec["finetune"]["modalities"])
    return have & wanted


def applicable(model: str, modalities: Iterable[str]) -> bool:
    """Whether ``model`` can run on a study with these modalities (MCSP: any)."""
    if model in MCSP_MODELS:
        return True
    return BASELINE_MODALITIES[model] in set(modalities)


def table_names(config: Mapping[str, Any]) -> list[str]:
    """The tables the run writes: ``report.tables``, or one per experiment."""
    tables = (config.get("report") or {}).get("tables") or {}
    return list(tables) or list(config["evaluate"]["experiments"])


def table_context(config: Mapping[str, Any], modalities: Iterable[str]) -> dict[str, Any]:
    """What the tables' footnotes and n/a cells need: folds, seeds, each experiment's pretraining
    (scope and variant) and why a model of an experiment did not run (``"exp/model"``)."""
    have = sorted(set(modalities))
    evaluate = config["evaluate"]
    folds = evaluate.get("folds") or list(range(config["study"]["folds"]))
    context: dict[str, Any] = {
        "folds": len(folds),
        "seeds": evaluate.get("seeds", 1),
        "pretrain_scope": {},
        "not_applicable": {},
    }
    for experiment in evaluate["experiments"]:
        spec = experiment_settings(config, experiment)
        variant = spec["pretrain_variant"]
        scope = "per test fold (train_folds)" if spec["pretrain_scope"] == "train_folds" else "all"
        context["pretrain_scope"][experiment] = (
            scope if variant == DEFAULT_VARIANT else f"{scope}, variant {variant}"
        )
        for model in spec["models"]:
            if not model_modalities(config, experiment, model, have):
                context["not_applicable"][f"{experiment}/{model}"] = (
                    f"not applicable: the study has no {_needs(config, experiment, model)}"
                )
    return context


def _needs(config: Mapping[str, Any], experiment: str, model: str) -> str:
    wanted = model_modalities(config, experiment, model, ["fmri", "eeg"])
    names = {"fmri": "fMRI", "eeg": "EEG"}
    return " or ".join(names[m] for m in sorted(wanted)) or "modality this model uses"
