"""Config and cohort schemas: every key typed, defaulted and described; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mcsp.config import (
    SCHEMAS,
    iter_properties,
    load_cohort,
    load_config,
    load_schema,
    validate,
)
from mcsp.exceptions import ConfigError

from .conftest import REPO


def _required_keys(schema: dict, prefix: str = "") -> set[str]:
    out = {f"{prefix}{key}" for key in schema.get("required", [])}
    for key, sub in schema.get("properties", {}).items():
        out |= _required_keys(sub, f"{prefix}{key}.")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict):
            out |= _required_keys(extra, f"{prefix}{key}.<name>.")
    return out


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_key_typed_defaulted_described(name: str) -> None:
    schema = load_schema(name)
    required = _required_keys(schema)
    keys = list(iter_properties(schema))
    assert len(keys) > 5
    for key, sub in keys:
        assert sub.get("description", "").strip(), f"{name}: key {key} has no description"
        assert "type" in sub or "enum" in sub, f"{name}: key {key} has no type"
        if key not in required:
            assert "default" in sub, f"{name}: key {key} is neither required nor defaulted"


@pytest.mark.parametrize("name", SCHEMAS)
def test_defaults_are_valid(name: str) -> None:
    minimal = {"name": "x"} if name == "cohort" else {}
    filled = validate(minimal, name, "minimal")
    for key, sub in iter_properties(load_schema(name)):
        if "default" in sub and "<name>" not in key and "properties" not in sub:
            node = filled
            for part in key.split("."):
                node = node[part]
            assert node == sub["default"], key


def test_repository_configs_are_valid() -> None:
    config = load_config(REPO / "config" / "config.yaml")
    for path in sorted((REPO / "config" / "cohorts").glob("*.yaml")):
        load_cohort(path)
    assert config["cohorts"] == ["synthetic"]


@pytest.mark.parametrize(
    "path", sorted((REPO / "config" / "experiments").glob("*.yaml")), ids=lambda p: p.stem
)
def test_experiment_files_are_valid(path: Path) -> None:
    """An experiment file, merged over config.yaml as Snakemake does, is a valid config whose
    cohorts exist and whose synthetic cohort (if any) is generated where its cohort file reads."""
    from mcsp.config import validate
    from mcsp.plan import check_variants, merge

    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config = validate(merge(base, yaml.safe_load(path.read_text())), "config", str(path))
    for name in config["cohorts"]:
        cohort = load_cohort(REPO / config["cohorts_dir"] / f"{name}.yaml")
        if config["synth"]["activate"] and cohort.get("bids_root"):
            assert cohort["bids_root"] == config["synth"]["out"], name
    assert config["results_dir"] != "results", "experiment sets write beside the demo's results"
    check_variants(config)


def test_synth_defaults_match_the_generator() -> None:
    from mcsp.synth import DEFAULT_EFFECTS

    effects = load_schema("config")["properties"]["synth"]["properties"]["effects"]["properties"]
    assert {k: v["default"] for k, v in effects.items()} == DEFAULT_EFFECTS


def test_validate_does_not_modify_its_input() -> None:
    data = {"synth": {"subjects": 3}}
    validate(data, "config", "x")
    assert data == {"synth": {"subjects": 3}}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"synth": {"subject": 3}}, "unknown key 'synth.subject': did you mean 'synth.subjects'?"),
        ({"cohort": ["a"]}, "did you mean 'cohorts'?"),
        ({"synth": {"subjects": "ten"}}, "key 'synth.subjects': 'ten' is not of type 'integer'"),
        ({"synth": {"effects": {"fmri_fc": -1}}}, "key 'synth.effects.fmri_fc'"),
        ({"cohorts": ["bad-name"]}, "does not match"),
        ({"synth": {"zzzz": 1}}, "valid keys: activate, eeg_duration_s, effects"),
    ],
)
def test_config_errors_name_the_key_and_fix(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(data, "config", "my/config.yaml")
    assert str(err.value).startswith("my/config.yaml: invalid config file")
    assert expected in str(err.value)


def test_cohort_errors(tmp_path: Path) -> None:
    path = tmp_path / "abc.yaml"
    path.write_text(yaml.safe_dump({"labels": {"ASD": {"colum": "dx", "mapping": {"a": 1}}}}))
    with pytest.raises(ConfigError) as err:
        load_cohort(path)
    text = str(err.value)
    assert "missing required key 'name'" in text
    assert "did you mean 'labels.ASD.column'?" in text


def test_cohort_name_must_match_file(tmp_path: Path) -> None:
    path = tmp_path / "abc.yaml"
    path.write_text(yaml.safe_dump({"name": "other", "bids_root": "x"}))
    with pytest.raises(ConfigError, match="Rename the file to other.yaml"):
        load_cohort(path)


def test_unreadable_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("synth: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listing)


@pytest.mark.parametrize(
    ("fmt", "missing"),
    [("bids", "bids_root"), ("abide_pcp", "timeseries.path"), ("xcpd", "bids_root")],
)
def test_cohort_format_needs_its_keys(tmp_path: Path, fmt: str, missing: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(f"name: x\nformat: {fmt}\n")
    with pytest.raises(ConfigError, match=f"format '{fmt}' needs key '{missing}'"):
        load_cohort(path)


def test_study_labels_checked_against_the_cohorts() -> None:
    from mcsp.config import check_study_labels

    cohorts = {"hbn": {"labels": {"ADHD": {}, "sex": {}}}, "other": {"labels": {"ASD": {}}}}
    ok = validate(
        {"cohorts": ["hbn"], "study": {"cohorts": ["hbn"], "stratify_label": "ADHD"}},
        "config",
        "test",
    )
    check_study_labels(ok, cohorts)
    demo = validate({"cohorts": ["hbn"], "study": {"stratify_label": "ASD"}}, "config", "test")
    with pytest.raises(ConfigError, match=r"study.stratify_label 'ASD': not a label") as info:
        check_study_labels(demo, {"hbn": cohorts["hbn"]})
    assert "their labels: ADHD, sex" in str(info.value)
    tasks = validate(
        {"evaluate": {"tasks": ["ADHD", "MDD"], "experiments": {"x": {"tasks": ["dx"]}}}},
        "config",
        "test",
    )
    with pytest.raises(ConfigError, match=r"evaluate.tasks 'MDD'.*experiments.x.tasks 'dx'"):
        check_study_labels(tasks, cohorts)
