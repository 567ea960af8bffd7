# Config validation (once), cohort files, wildcard constraints and input functions.
import functools
import inspect
import sys
from pathlib import Path

from mcsp.bids import USABLE, output_stem, read_inventory
from mcsp.config import (
    check_cohort_overlap,
    check_study_labels,
    cohort_input_problem,
    cohort_path,
    load_cohort,
    validate,
)
from mcsp.exceptions import CohortError, ConfigError
from mcsp.plan import check_variants, table_names
from mcsp.runlock import LOCK_NAME, acquire, release

CONFIG = validate(config, "config", source="config (config/config.yaml and --config)")
RESULTS = CONFIG["results_dir"]
SYNTH = CONFIG["synth"]
FMRI = CONFIG["fmri"]
EEG = CONFIG["eeg"]
CONFOUND_CHECK_KEYS = (
    "strategy",
    "strategy_options",
    "fd_threshold",
    "std_dvars_threshold",
)
ATLAS = FMRI["atlas"]
COHORTS = {name: load_cohort(cohort_path(CONFIG, name)) for name in CONFIG["cohorts"]}
check_cohort_overlap(COHORTS)
check_study_labels(CONFIG, COHORTS)
check_variants(CONFIG)
TABLE_NAMES = table_names(CONFIG)
GENERATED = [SYNTH["out"]] if SYNTH["activate"] else []
BIDS_COHORTS = [name for name, c in COHORTS.items() if c["format"] == "bids"]
IMPORTED_COHORTS = [
    name for name, c in COHORTS.items() if c["format"] not in ("bids", "synthetic")
]
SYNTHETIC_COHORTS = [name for name, c in COHORTS.items() if c["format"] == "synthetic"]
FMRIPREP_COHORTS = [
    name
    for name in BIDS_COHORTS
    if COHORTS[name]["fmriprep"]["runtime"] != "precomputed"
]


# one run at a time per results folder (not taken by dry runs or runs with nothing to do)
onstart:
    acquire(RESULTS)
    from mcsp.provenance import write as write_provenance

    write_provenance(RESULTS, CONFIG, sys.argv)


onsuccess:
    release(Path(RESULTS) / LOCK_NAME)
    from mcsp.qc import lost_modalities

    for message in lost_modalities(RESULTS, list(COHORTS)):
        print(f"WARNING: {message}", file=sys.stderr)


onerror:
    release(Path(RESULTS) / LOCK_NAME)


wildcard_constraints:
    cohort="[A-Za-z0-9]+",
    subject="[A-Za-z0-9]+",
    session="[A-Za-z0-9]+",
    task="[A-Za-z0-9]+",
    run="[0-9]+",


def rule_callable(func):
    """Mark a function that rules call for each job. Snakemake reads such a function's signature
    every time it calls it (some 200,000 times planning a 5,000-subject cohort); Python's
    inspect.signature returns ``__signature__`` when a function has one, so it is computed once.
    """
    func.__signature__ = inspect.signature(func)
    return func


def per_attempt(amount):
    """A resource of ``amount`` on a job's first attempt, twice that on its retry, and so on."""
    return rule_callable(lambda wildcards, attempt: amount * attempt)


def one_of(names):
    """A wildcard regex matching exactly ``names`` (nothing when empty)."""
    return "|".join(names) if names else "(?!x)x"


def bids_root(wildcards):
    """The cohort's input folder (BIDS root, or the time-series folder of imported cohorts),
    checked as `mcsp config check` checks it unless this workflow generates it."""
    cohort = COHORTS[wildcards.cohort]
    path = cohort_path(CONFIG, wildcards.cohort)
    problem = cohort_input_problem(cohort, path, GENERATED)
    if problem:
        raise ConfigError(problem)
    if cohort["format"] == "abide_pcp":
        return cohort["timeseries"]["path"]
    return cohort["bids_root"]


def inventory_table(cohort):
    """The cohort inventory TSV; downstream input functions read it through the checkpoint."""
    return checkpoints.cohort_inventory.get(cohort=cohort).output.tsv


@rule_callable
def job_inventory(wildcards):
    """Input function: the inventory of the job's cohort."""
    return inventory_table(wildcards.cohort)


@rule_callable
def job_cohort(wildcards):
    """Params function: the job's cohort settings."""
    return COHORTS[wildcards.cohort]


@functools.lru_cache(maxsize=64)
def _usable(path, mtime, modality):
    """{output stem: row} of an inventory's usable recordings of ``modality``: built once per
    inventory version, not once per job (the DAG of a large cohort asks thousands of times).
    """
    table = read_inventory(path).table
    rows = table[(table["modality"] == modality) & table["status"].isin(USABLE)]
    return {output_stem(row): row for row in rows.to_dict("records")}


@functools.lru_cache(maxsize=64)
def _stems_by_subject(path, mtime, modality):
    by_subject = {}
    for stem, row in _usable(path, mtime, modality).items():
        by_subject.setdefault(row["subject"], []).append(stem)
    return by_subject


def usable_rows(cohort, modality):
    """{output stem: inventory row} of the cohort's usable recordings of ``modality`` (shared:
    do not modify)."""
    path = inventory_table(cohort)
    return _usable(path, Path(path).stat().st_mtime, modality)


def subject_stems(cohort, modality, subject):
    """Output stems of one subject's usable recordings of ``modality``."""
    path = inventory_table(cohort)
    return _stems_by_subject(path, Path(path).stat().st_mtime, modality).get(
        subject, []
    )


def usable_row(wildcards, modality):
    """The inventory row of output stem ``wildcards.stem``; a clear error when there is none."""
    rows = usable_rows(wildcards.cohort, modality)
    if wildcards.stem not in rows:
        raise CohortError(
            f"{wildcards.stem}: no usable {modality} recording of that name in the inventory "
            f"of cohort {wildcards.cohort} ({inventory_table(wildcards.cohort)})."
        )
    return rows[wildcards.stem]


def cohort_targets(cohort):
    """Per-cohort outputs of the default target (inventory, QC tables, figures)."""
    spec = COHORTS[cohort]
    targets = [f"{RESULTS}/{cohort}/inventory.tsv"]
    if spec["fmri"]["tasks"] or spec["format"] != "bids":
        targets.append(f"{RESULTS}/{cohort}/fmri_qc.tsv")
    if spec["format"] == "bids" and spec["fmri"]["tasks"]:
        subjects = sorted(
            {row["subject"] for row in usable_rows(cohort, "fmri").values()}
        )
        targets += [fmri_figure(cohort, subject) for subject in subjects]
    if spec["format"] in ("bids", "synthetic") and spec["eeg"]["tasks"]:
        targets.append(f"{RESULTS}/{cohort}/eeg_qc.tsv")
    return targets


def qc_tables(cohort):
    """The cohort's inventory and QC tables (what the dataset store reads)."""
    spec = COHORTS[cohort]
    tables = [f"{RESULTS}/{cohort}/inventory.tsv"]
    if spec["fmri"]["tasks"] or spec["format"] != "bids":
        tables.append(f"{RESULTS}/{cohort}/fmri_qc.tsv")
    if spec["format"] in ("bids", "synthetic") and spec["eeg"]["tasks"]:
        tables.append(f"{RESULTS}/{cohort}/eeg_qc.tsv")
    return tables


def study_cohorts():
    """Cohorts of the study (config study.cohorts, default every configured cohort)."""
    names = CONFIG["study"]["cohorts"] or list(COHORTS)
    unknown = [name for name in names if name not in COHORTS]
    if unknown:
        raise ConfigError(
            f"study.cohorts names {unknown}, which are not in cohorts {list(COHORTS)}: add them "
            "to cohorts or remove them from study.cohorts."
        )
    return names


def store_inputs(wildcards):
    return [table for cohort in study_cohorts() for table in qc_tables(cohort)]


def run_targets():
    """Every output of the run the report shows (read after the inventory checkpoints)."""
    targets = [target for cohort in COHORTS for target in cohort_targets(cohort)]
    return targets + [
        f"{RESULTS}/store/store.json",
        *(f"{RESULTS}/pretrain/{name}/summary.json" for name in pretraining_dirs()),
        f"{RESULTS}/evaluation/summary.tsv",
        f"{RESULTS}/evaluation/paired.tsv",
        f"{RESULTS}/report/tables/index.json",
    ]


def all_targets(wildcards):
    """Everything the default target asks for: the run, and its report last."""
    return [*run_targets(), f"{RESULTS}/report/index.html"]


def report_input(wildcards):
    """The report is built from the whole run."""
    return {"run": run_targets()}


def table_context():
    """Footnotes and n/a reasons of the tables (mcsp.plan.table_context)."""
    from mcsp.plan import table_context as context

    return context(CONFIG, study_modalities())


# --- fMRI branch inputs ---


def fmriprep_dir(cohort):
    """Where fMRIPrep writes (container runtimes) or was written (precomputed)."""
    if COHORTS[cohort]["fmriprep"]["runtime"] == "precomputed":
        from mcsp.fmriprep import derivatives_dir

        return str(derivatives_dir(COHORTS[cohort]))
    return f"{RESULTS}/{cohort}/fmriprep"


@rule_callable
def fmri_run_input(wildcards):
    """Preprocessed BOLD, confounds (and mask) of a precomputed run, or the subject's fMRIPrep job."""
    row = usable_row(wildcards, "fmri")
    if wildcards.cohort in FMRIPREP_COHORTS:
        return {
            "fmriprep": f"{RESULTS}/{wildcards.cohort}/fmriprep/sub-{row['subject']}"
        }
    from mcsp.fmri import run_files

    files = run_files(row["derivative"])
    return {k: str(v) for k, v in files.items() if v is not None}


def fmri_figure(cohort, subject):
    return f"{RESULTS}/{cohort}/figures/sub-{subject}_atlas-{ATLAS}_fmri.png"


@rule_callable
def subject_timeseries(wildcards):
    return [
        f"{RESULTS}/{wildcards.cohort}/fmri/{stem}_atlas-{ATLAS}_timeseries.tsv"
        for stem in subject_stems(wildcards.cohort, "fmri", wildcards.subject)
    ]


def cohort_timeseries_sidecars(wildcards):
    return [
        f"{RESULTS}/{wildcards.cohort}/fmri/{stem}_atlas-{ATLAS}_timeseries.json"
        for stem in usable_rows(wildcards.cohort, "fmri")
    ]


# --- EEG branch inputs ---


@rule_callable
def eeg_input(wildcards):
    row = usable_row(wildcards, "eeg")
    return {"recording": row["path"]}


@rule_callable
def eeg_settings(wildcards):
    """The config's EEG preprocessing settings plus the cohort's montage (and conditions)."""
    from mcsp.bids import cohort_montage

    row = usable_row(wildcards, "eeg")
    cohort = COHORTS[wildcards.cohort]
    settings = {**EEG["preprocessing"], "montage": cohort_montage(cohort, row["site"])}
    if cohort["eeg"][
        "conditions"
    ]:  # conditions marked by events (absent: params unchanged)
        settings["conditions"] = cohort["eeg"]["conditions"]
    return settings


@rule_callable
def eeg_aliases(wildcards):
    """Params function: the cohort's EEG channel aliases."""
    return COHORTS[wildcards.cohort]["eeg"]["channel_aliases"]


@rule_callable
def fmriprep_space(wildcards):
    """Params function: the template space of the cohort's fMRIPrep outputs."""
    return COHORTS[wildcards.cohort]["fmriprep"]["output_space"]


def cohort_eeg_sidecars(wildcards):
    return [
        f"{RESULTS}/{wildcards.cohort}/eeg/{stem}_desc-clean_eeg.json"
        for stem in usable_rows(wildcards.cohort, "eeg")
    ]


# --- evaluation ---

EVALUATE = CONFIG["evaluate"]
MCSP_MODEL_NAMES = ("mcsp", "mcsp_linear", "mcsp_scratch")


def study_modalities():
    """Modalities the study's cohorts can give (imported cohorts are fMRI only)."""
    have = set()
    for name in study_cohorts():
        cohort = COHORTS[name]
        if cohort["format"] != "bids" or cohort["fmri"]["tasks"]:
            have.add("fmri")
        if cohort["format"] in ("bids", "synthetic") and cohort["eeg"]["tasks"]:
            have.add("eeg")
    return have & set(CONFIG["model"]["modalities"])


def evaluation_tasks(experiment):
    """The experiment's tasks, evaluate.tasks, or every label the study's cohorts define."""
    from mcsp.plan import experiment_settings

    tasks = experiment_settings(CONFIG, experiment)["tasks"]
    if tasks:
        return list(tasks)
    return sorted(
        {label for name in study_cohorts() for label in COHORTS[name]["labels"]}
    )


def evaluation_folds():
    """evaluate.folds, or every fold of a stratified k-fold study."""
    if EVALUATE["folds"] is not None:
        return list(EVALUATE["folds"])
    if CONFIG["study"]["split"] != "stratified_kfold":
        raise ConfigError(
            "study.split leave_one_site_out: list the test folds in evaluate.folds (one per site, "
            "see results/store/index.tsv) as their number is unknown before the store exists."
        )
    return list(range(CONFIG["study"]["folds"]))


def model_runs(experiment, model):
    """Whether ``model`` of ``experiment`` has a modality of the study to use (an EEG-only
    model on an fMRI-only study is marked not applicable in the tables instead)."""
    from mcsp.plan import model_modalities

    return bool(model_modalities(CONFIG, experiment, model, study_modalities()))


def evaluation_jobs():
    """Metrics files of every (experiment, model, task, fold, seed) job."""
    from mcsp.plan import experiment_settings

    jobs = []
    for experiment in EVALUATE["experiments"]:
        settings = experiment_settings(CONFIG, experiment)
        for model in settings["models"]:
            if not model_runs(experiment, model):
                continue
            for task in evaluation_tasks(experiment):
                for fold in evaluation_folds():
                    for seed in range(settings["seeds"]):
                        jobs.append(
                            f"{RESULTS}/evaluation/{experiment}/{model}/{task}/"
                            f"fold-{fold}_seed-{seed}_metrics.tsv"
                        )
    return jobs


@rule_callable
def evaluation_job_settings(wildcards):
    """Only the settings this evaluation job uses (mcsp.plan.job_settings)."""
    from mcsp.plan import job_settings

    return job_settings(CONFIG, wildcards.experiment, wildcards.model)


def pretraining_dirs():
    """Every pretraining the evaluation needs: ``<variant>/all`` and / or ``<variant>/fold-K``."""
    from mcsp.plan import experiment_settings, pretraining_dir

    names = []
    for experiment in EVALUATE["experiments"]:
        settings = experiment_settings(CONFIG, experiment)
        if not any(m in ("mcsp", "mcsp_linear") for m in settings["models"]):
            continue
        if not model_runs(experiment, "mcsp"):
            continue
        for fold in evaluation_folds():
            name = pretraining_dir(CONFIG, experiment, fold)
            if name not in names:
                names.append(name)
    return names


@rule_callable
def pretrain_params(wildcards):
    """The settings of pretraining ``<variant>/<all|fold-K>`` (mcsp.plan.pretrain_job_config)."""
    from mcsp.plan import pretrain_job_config

    return pretrain_job_config(CONFIG, wildcards.variant, wildcards.scope)


def job_folds(wildcards):
    """The test folds of an evaluation job: its fold, or every fold (evaluate.batch_folds)."""
    if "fold" in wildcards.keys():
        return [int(wildcards.fold)]
    return evaluation_folds()


def job_pretrainings(wildcards):
    """{fold: pretrained model.pt} of an MCSP evaluation job ({} for mcsp_scratch)."""
    from mcsp.plan import pretraining_dir

    if wildcards.model == "mcsp_scratch":
        return {}
    return {
        fold: f"{RESULTS}/pretrain/"
        f"{pretraining_dir(CONFIG, wildcards.experiment, fold)}/model.pt"
        for fold in job_folds(wildcards)
    }


@rule_callable
def evaluation_job_plan(wildcards):
    """The folds an evaluation job runs and the pretrained model of each."""
    return {"folds": job_folds(wildcards), "pretrained": job_pretrainings(wildcards)}


@rule_callable
def finetune_input(wildcards):
    """The store, and the folds' pretrained models unless the model starts from scratch."""
    inputs = {
        "summary": f"{RESULTS}/store/store.json",
        "samples": f"{RESULTS}/store/samples.h5",
    }
    pretrained = sorted(set(job_pretrainings(wildcards).values()))
    if pretrained:
        inputs["pretrained"] = pretrained
    return inputs
