# Config validation (once), cohort files, wildcard constraints and input functions.
from pathlib import Path

from mcsp.config import cohort_path, load_cohort, validate
from mcsp.exceptions import ConfigError

CONFIG = validate(config, "config", source="config (config/config.yaml and --config)")
RESULTS = CONFIG["results_dir"]
SYNTH = CONFIG["synth"]
COHORTS = {name: load_cohort(cohort_path(CONFIG, name)) for name in CONFIG["cohorts"]}


wildcard_constraints:
    cohort="[A-Za-z0-9]+",
    subject="[A-Za-z0-9]+",
    session="[A-Za-z0-9]+",
    task="[A-Za-z0-9]+",
    run="[0-9]+",


def is_synthetic(cohort):
    """True when the cohort's BIDS folder is written by the synth rule of this workflow."""
    root = Path(COHORTS[cohort]["bids_root"]).resolve()
    return SYNTH["activate"] and root == Path(SYNTH["out"]).resolve()


def bids_root(wildcards):
    """The cohort's BIDS folder, checked to exist unless this workflow generates it."""
    root = COHORTS[wildcards.cohort]["bids_root"]
    if not is_synthetic(wildcards.cohort) and not Path(root).is_dir():
        raise ConfigError(
            f"{cohort_path(CONFIG, wildcards.cohort)}: bids_root {root!r} does not exist. "
            "Point bids_root at the cohort's BIDS folder (relative to the repository root)."
        )
    return root


def inventory_table(cohort):
    """The cohort inventory TSV; downstream input functions read it through the checkpoint."""
    return checkpoints.cohort_inventory.get(cohort=cohort).output.tsv


def all_targets():
    """Everything `rule all` asks for, per cohort."""
    return expand(f"{RESULTS}/{{cohort}}/inventory.tsv", cohort=list(COHORTS))
