"""Config, cohort and experiment files: load, fill defaults, validate against the JSON schemas.

The schemas in ``workflow/schemas/`` are the single source of truth: every key has a type, a
default (or is required) and a description. Validation happens once; afterwards the returned
dicts are only read.
"""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mcsp.exceptions import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO_ROOT / "workflow" / "schemas"
SCHEMAS = ("config", "cohort")


def load_schema(name: str) -> dict[str, Any]:
    """Return the JSON schema ``workflow/schemas/<name>.schema.yaml`` (a copy of the one parsed
    per process)."""
    return copy.deepcopy(_parsed_schema(name))


@functools.cache
def _parsed_schema(name: str) -> dict[str, Any]:
    path = SCHEMA_DIR / f"{name}.schema.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{path}: schema not found. mcsp must be installed from its repository "
            "(`pip install -e .`) so that workflow/schemas/ sits beside the package."
        )
    # libyaml's parser when PyYAML has it: the config schema takes 0.1 s in pure Python
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a YAML syntax error becomes a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found. Check the path (relative to {Path.cwd()}).")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}). Fix the syntax at that line.") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys to values at the top level, "
            f"got {type(data).__name__}."
        )
    return data


def validate(data: Mapping[str, Any] | None, schema: str, source: str) -> dict[str, Any]:
    """Fill defaults into a copy of ``data`` and validate it against schema ``schema``.

    Args:
        data: the parsed file (not modified).
        schema: schema name, one of ``SCHEMAS``.
        source: file name (or other origin) used in error messages.

    Returns:
        A new dict with every defaulted key present.

    Raises:
        ConfigError: naming the file, the key, the problem and the fix, for the first problems.
    """
    schema_dict = load_schema(schema)
    filled = copy.deepcopy(dict(data or {}))
    _fill_defaults(filled, schema_dict)
    validator = jsonschema.Draft202012Validator(schema_dict)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if errors:
        messages = [_describe(err, schema_dict) for err in errors[:5]]
        more = f"\n  … and {len(errors) - 5} more problems" if len(errors) > 5 else ""
        raise ConfigError(f"{source}: invalid {schema} file:\n  " + "\n  ".join(messages) + more)
    return filled


def subschema(schema: str, dotted: str) -> dict[str, Any]:
    """The part of schema ``schema`` that describes key ``dotted`` (e.g. ``eeg.preprocessing``)."""
    node: Mapping[str, Any] = load_schema(schema)
    for part in dotted.split("."):
        node = node["properties"][part]
    return dict(node)


def schema_defaults(schema: str, dotted: str) -> dict[str, Any]:
    """Defaults of every key of object ``dotted`` in schema ``schema``, as the schema gives them."""
    filled: dict[str, Any] = {}
    _fill_defaults(filled, subschema(schema, dotted))
    return filled


def load_config(path: str | Path) -> dict[str, Any]:
    """Load and validate the workflow config (``config/config.yaml``)."""
    return validate(load_yaml(path), "config", str(path))


def load_cohort(path: str | Path) -> dict[str, Any]:
    """Load and validate one cohort file (``config/cohorts/NAME.yaml``)."""
    cohort = validate(load_yaml(path), "cohort", str(path))
    if Path(path).suffix in (".yaml", ".yml") and Path(path).stem != cohort["name"]:
        raise ConfigError(
            f"{path}: key 'name' is {cohort['name']!r} but the file is named "
            f"{Path(path).name!r}. Rename the file to {cohort['name']}.yaml or change 'name'."
        )
    _check_format(cohort, path)
    return cohort


# Keys each cohort format needs (beyond the schema's own `required`).
_FORMAT_KEYS = {
    "bids": ["bids_root"],
    "abide_pcp": ["timeseries.path", "timeseries.phenotype"],
    "xcpd": ["bids_root", "timeseries.path"],
    "synthetic": [],
}


def _dotted(mapping: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``a.b.c`` in nested mappings; None when a level is missing."""
    value: Any = mapping
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _check_format(cohort: Mapping[str, Any], path: str | Path) -> None:
    """Keys required by the cohort's ``format`` must be set (not null)."""
    for dotted in _FORMAT_KEYS[cohort["format"]]:
        if _dotted(cohort, dotted) in (None, ""):
            raise ConfigError(
                f"{path}: format {cohort['format']!r} needs key {dotted!r} (it is not set). "
                f"Set {dotted} in the cohort file; workflow/schemas/cohort.schema.yaml "
                "describes it."
            )


def _input_folders(cohort: Mapping[str, Any]) -> dict[str, str]:
    """{key: folder} of the input folders a cohort reads (its format's keys that are set)."""
    keys = {
        "bids": ["bids_root", "fmriprep.derivatives"],
        "xcpd": ["bids_root", "timeseries.path"],
        "abide_pcp": ["timeseries.path"],
        "synthetic": [],
    }[cohort["format"]]
    values = {dotted: _dotted(cohort, dotted) for dotted in keys}
    return {dotted: str(v) for dotted, v in values.items() if v not in (None, "")}


def cohort_input_problem(
    cohort: Mapping[str, Any], source: str | Path, generated: Iterable[str | Path] = ()
) -> str | None:
    """Why a cohort's input folders cannot be read (missing, or a file), or None.

    ``generated``: folders this workflow writes itself (``synth.out`` when ``synth.activate``),
    which may not exist yet. The workflow and ``mcsp config check`` both call this, so they say
    the same thing.
    """
    made = {Path(p).resolve() for p in generated}
    for key, folder in _input_folders(cohort).items():
        path = Path(folder)
        if path.resolve() in made or key == "fmriprep.derivatives" and not path.exists():
            continue  # written by this workflow; fMRIPrep's own output when it runs
        if not path.exists():
            problem = "does not exist"
        elif not path.is_dir():
            problem = "is a file, not a folder"
        else:
            continue
        return (
            f"{source}: {key} {folder!r} {problem} (relative paths start at {Path.cwd()}). "
            f"Point {key} at the cohort's folder."
        )
    return None


def check_cohort_overlap(cohorts: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse two cohorts of one study that read the same input folder (or one inside the
    other): their subjects would enter the store twice, in different folds.

    Raises:
        ConfigError: naming both cohorts, the keys and the folder.
    """
    seen: list[tuple[str, str, Path]] = []
    for name, cohort in cohorts.items():
        for key, folder in _input_folders(cohort).items():
            path = Path(folder).resolve()
            for other, other_key, other_path in seen:
                nested = path.is_relative_to(other_path) or other_path.is_relative_to(path)
                if other != name and nested:
                    raise ConfigError(
                        f"cohorts {other!r} ({other_key} {other_path}) and {name!r} ({key} "
                        f"{path}) read the same input folder: their subjects would be counted "
                        "twice and could fall on both sides of a split. Keep one of the two "
                        "cohort files in `cohorts` (a copy renamed is still the same data)."
                    )
            seen.append((name, key, path))


def check_study_labels(config: Mapping[str, Any], cohorts: Mapping[str, Mapping[str, Any]]) -> None:
    """The study's ``stratify_label`` and evaluation tasks must be labels of its cohorts; checked
    when the workflow starts, not when the store is built after every cohort was preprocessed.

    Raises:
        ConfigError: naming the setting, the study's cohorts and the labels they have.
    """
    names = [n for n in (config["study"]["cohorts"] or list(cohorts)) if n in cohorts]
    labels = sorted({label for n in names for label in (cohorts[n].get("labels") or {})})
    evaluate = config["evaluate"]
    wanted = [("study.stratify_label", config["study"]["stratify_label"])]
    wanted += [("evaluate.tasks", t) for t in evaluate.get("tasks") or []]
    for name, spec in (evaluate.get("experiments") or {}).items():
        wanted += [
            (f"evaluate.experiments.{name}.tasks", t) for t in (spec or {}).get("tasks") or []
        ]
    problems = [f"{key} {value!r}" for key, value in wanted if value and value not in labels]
    if problems:
        raise ConfigError(
            f"{'; '.join(problems)}: not a label of the study's cohorts ({', '.join(names)}; their "
            f"labels: {', '.join(labels) or 'none'}). Fix: choose among those labels (e.g. "
            f"--config study='{{stratify_label: {labels[0] if labels else 'null'}}}' "
            "evaluate='{tasks: [...]}'), or add the label to a cohort file's labels."
        )


def cohort_path(config: Mapping[str, Any], name: str) -> Path:
    """Path of cohort ``name``'s file under the config's ``cohorts_dir``."""
    return Path(config["cohorts_dir"]) / f"{name}.yaml"


def iter_properties(schema: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, dict]]:
    """Yield ``(dotted key, subschema)`` for every key a schema declares, nested ones included.

    Keys under a free-form mapping (``additionalProperties`` with a schema) appear as ``<name>``.
    """
    for key, sub in schema.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        yield dotted, sub
        yield from iter_properties(sub, dotted + ".")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict):
            yield from iter_properties(extra, dotted + ".<name>.")


def closest_key(key: str, valid: Iterable[str]) -> str | None:
    """The valid key most like a mistyped ``key``, or None when none is close."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return close[0] if close else None


def _fill_defaults(instance: dict[str, Any], schema: Mapping[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict):
            _fill_defaults(instance[key], sub)
            extra = sub.get("additionalProperties")
            if isinstance(extra, dict):
                for value in instance[key].values():
                    if isinstance(value, dict):
                        _fill_defaults(value, extra)


def _subschema(schema: Mapping[str, Any], path: list[Any]) -> Mapping[str, Any]:
    node = schema
    for part in path:
        props = node.get("properties", {})
        if part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        elif isinstance(node.get("items"), dict):
            node = node["items"]
        else:
            return {}
    return node


def _describe(err: jsonschema.ValidationError, schema: Mapping[str, Any]) -> str:
    path = list(err.absolute_path)
    where = ".".join(str(p) for p in path) or "(top level)"
    if err.validator == "additionalProperties":
        valid = sorted(err.schema.get("properties", {}))
        unknown = sorted(set(err.instance) - set(valid))
        parts = []
        for key in unknown:
            full = ".".join([*(str(p) for p in path), key])
            close = closest_key(key, valid)
            parent = "".join(f"{p}." for p in path)
            hint = (
                f"did you mean '{parent}{close}'?" if close else f"valid keys: {', '.join(valid)}"
            )
            parts.append(f"unknown key '{full}': {hint}")
        return "; ".join(parts)
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        sub = _subschema(schema, [*path, missing])
        desc = sub.get("description", "")
        return f"missing required key '{'.'.join([*map(str, path), missing])}' ({desc})"
    sub = _subschema(schema, path)
    desc = sub.get("description", "")
    hint = f" Expected: {desc}" if desc else ""
    return f"key '{where}': {err.message}.{hint}"
