"""Real runs through the local SLURM cluster with the shipped profile, as a user's copy of it."""

from __future__ import annotations

import copy
import math
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import (
    REPO,
    TINY_SETTINGS,
    command_env,
    run,
    slurm_up,
    tool,
    write_workflow_config,
)

pytestmark = pytest.mark.slurm

PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
GPU_RULES = ("pretrain", "finetune", "finetune_folds")
GROUPED_RULES = ("eeg_clean", "fmri_timeseries", "fmri_figure", "finetune", "baseline")


@pytest.fixture(scope="module")
def cluster() -> None:
    if not slurm_up():
        pytest.skip("no SLURM controller answers (CI starts one with .ci/slurm-up.sh)")


def default_partition() -> str:
    """The cluster's default partition (marked * by sinfo)."""
    names = subprocess.run(
        ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    return next(name.rstrip("*") for name in names if name.endswith("*"))


def cluster_profile(root: Path) -> Path:
    """A copy of the shipped profile as a user makes it: this cluster's partition in place of
    ``cpu`` and ``gpu``. To keep the tests short: status checks from 1 s (not 10 s), and groups of
    4 ``eeg_clean`` jobs (not 8), so the tiny cohort's recordings run in three SLURM jobs."""
    profile = yaml.safe_load(PROFILE.read_text())
    partition = default_partition()
    for resources in [profile["default-resources"], *profile["set-resources"].values()]:
        if "slurm_partition" in resources:
            resources["slurm_partition"] = partition
    profile["slurm-init-seconds-before-status-checks"] = 1
    profile["group-components"]["eeg_clean"] = 4
    folder = root / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def slurm_ids(path: Path) -> list[str]:
    """SLURM job ids a rule log names (mcsp.logs writes ``SLURM job N`` at the start of a job)."""
    return re.findall(r"SLURM job (\d+)", path.read_text())


class SideRun:
    """A Snakemake run started in the background; :meth:`result` waits for it."""

    def __init__(self, cmd: list[str], cwd: Path, timeout: int, log: Path) -> None:
        self.log = log
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                ["timeout", "-s", "KILL", str(timeout), *cmd],
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=command_env(),
            )

    def result(self) -> tuple[int, str]:
        return self.proc.wait(), self.log.read_text()


@pytest.fixture(scope="module")
def side_runs(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The failing-job and time-limit runs, started together with the module's long run: both
    mostly wait on SLURM (a status check, a 1 min time limit), so they wait side by side; each
    test below collects its own."""
    failing = tmp_path_factory.mktemp("failing")
    config = write_workflow_config(failing, activate=False)
    cohort = failing / "config" / "cohorts" / "synthetic.yaml"
    empty = failing / "empty_bids"
    empty.mkdir()
    cohort.write_text(
        cohort.read_text().replace(str(failing / "resources" / "synthetic"), str(empty))
    )
    cmd = [tool("snakemake"), "--profile", str(cluster_profile(failing))]
    retried = tmp_path_factory.mktemp("retried")
    (retried / "Snakefile").write_text(RETRIED)
    runs = {
        "failing": (
            SideRun([*cmd, "--configfile", str(config)], REPO, 300, failing / "out.txt"),
            failing,
            empty,
        ),
        "retried": (
            SideRun(
                [tool("snakemake"), "--profile", str(cluster_profile(retried))],
                retried,
                300,
                retried / "out.txt",
            ),
            retried,
            None,
        ),
    }
    yield runs
    for run_, _, _ in runs.values():
        if run_.proc.poll() is None:
            run_.proc.kill()


def test_profile_groups_small_jobs_retries_and_splits_partitions() -> None:
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["retries"] >= 1
    assert set(GROUPED_RULES) <= set(profile["groups"])
    assert all(profile["group-components"][profile["groups"][r]] > 1 for r in GROUPED_RULES)
    # a group job runs its jobs one after another: one slot each, one slot per group job
    assert profile["default-resources"]["group_slot"] == 1
    assert profile["resources"]["group_slot"] == 1
    assert profile["set-resource-scopes"]["group_slot"] == "local"
    cpu = profile["default-resources"]["slurm_partition"]
    for rule in GPU_RULES:
        assert profile["set-resources"][rule]["slurm_partition"] not in (None, cpu), rule
    for resource in ("mem_mb", "runtime"):
        assert "attempt" in str(profile["default-resources"][resource]), resource
    # runs from one directory must not delete each other's queued jobs' log folders
    assert profile["slurm-delete-logfiles-older-than"] == 0


def test_profile_slurm_runs_every_job_rule_as_a_slurm_job(
    cluster: None, side_runs: dict, tmp_path: Path
) -> None:
    """The tiny cohort through SLURM: every rule in a SLURM job but the Snakefile's localrules
    (quick gathering steps, run by Snakemake itself), small jobs grouped into fewer sbatch
    submissions than jobs (the side runs go on meanwhile)."""
    settings = copy.deepcopy(TINY_SETTINGS)
    settings["pretrain"]["epochs"] = 1
    config = write_workflow_config(tmp_path, settings=settings, subjects=4, threads=1)
    profile = cluster_profile(tmp_path)
    result = run(
        [tool("snakemake"), "--profile", str(profile), "--configfile", str(config)],
        cwd=REPO,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    results = tmp_path / "results" / "synthetic"
    table = pd.read_csv(results / "inventory.tsv", sep="\t", dtype=str)
    assert table["subject"].nunique() == 4
    for qc in ("fmri_qc.tsv", "eeg_qc.tsv"):
        assert (pd.read_csv(results / qc, sep="\t")["status"] == "ok").any(), qc
    logs = tmp_path / "results" / "logs"
    rules = {
        "synth": [logs / "synth.log"],
        "cohort_inventory": [logs / "synthetic" / "inventory.log"],
        "fmri_timeseries": sorted((logs / "synthetic" / "fmri").rglob("*.log")),
        "eeg_clean": sorted((logs / "synthetic" / "eeg").rglob("*.log")),
        "fmri_figure": sorted((logs / "synthetic" / "figures").rglob("*.log")),
        "store": [logs / "store.log"],
        "pretrain": [logs / "pretrain" / "default" / "all.log"],
        "finetune": sorted((logs / "evaluation" / "main" / "mcsp").rglob("*.log")),
        "baseline": sorted((logs / "evaluation" / "main" / "fc_logreg").rglob("*.log")),
    }
    local = {
        "qc": [logs / "synthetic" / "fmri_qc.log", logs / "synthetic" / "eeg_qc.log"],
        "metrics": [logs / "metrics.log"],
        "tables": [logs / "report" / "tables.log"],
        "report": [logs / "report" / "report.log"],
    }
    for paths in local.values():
        for log in paths:
            assert log.is_file() and not slurm_ids(log), f"{log}: not run by Snakemake itself"
    for rule, paths in rules.items():
        assert paths, f"no log of rule {rule}"
        for log in paths:
            assert slurm_ids(log), f"{log}: not a SLURM job"
    # no job failed to start, though the side runs from the same directory ended meanwhile (the
    # plugin's log clean-up at their exit used to delete queued jobs' log folders)
    assert "Trying to restart job" not in output, output[-6000:]
    # a grouped rule's jobs share ceil(jobs / group-components) SLURM jobs, one sbatch call each
    profile_settings = yaml.safe_load((profile / "config.yaml").read_text())
    groups, components = profile_settings["groups"], profile_settings["group-components"]
    saved = 0
    for rule in GROUPED_RULES:
        ids = {i for log in rules[rule] for i in slurm_ids(log)}
        size = components[groups[rule]]
        expected = math.ceil(len(rules[rule]) / size)
        assert expected < len(rules[rule]), (rule, expected)
        assert len(ids) == expected, f"{rule}: {len(rules[rule])} jobs in SLURM jobs {sorted(ids)}"
        saved += len(rules[rule]) - expected
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", output)
    jobs = sum(len(paths) for paths in rules.values())
    assert len(set(submitted)) == len(submitted) == jobs - saved, (len(submitted), jobs)


def test_failing_job_is_reported_not_hung(side_runs: dict) -> None:
    side, root, empty = side_runs["failing"]
    returncode, output = side.result()
    assert returncode not in (0, -9, 137), "snakemake must fail, not succeed or hang"
    assert "cohort_inventory" in output
    log = (root / "results" / "logs" / "synthetic" / "inventory.log").read_text()
    assert re.search(r"SLURM job \d+", log)
    assert str(empty) in log


RETRIED = """
rule slow:
    output:
        "done.txt",
    resources:
        mem_mb=lambda wc, attempt: 300 * attempt,
        runtime=lambda wc, attempt: attempt,
    shell:
        "echo attempt {resources.runtime} mem_mb {resources.mem_mb}"
        " SLURM job $SLURM_JOB_ID >> attempts.txt;"
        " if [ {resources.runtime} -lt 2 ]; then sleep 600; fi; touch {output}"
"""


def test_job_killed_for_its_time_limit_is_retried_with_more(side_runs: dict) -> None:
    """With the profile's retries, a job SLURM kills at its 1 min limit runs again as a new SLURM
    job with the second attempt's runtime and memory."""
    side, root, _ = side_runs["retried"]
    returncode, output = side.result()
    assert returncode == 0, output[-4000:]
    assert "SLURM status is: 'TIMEOUT'" in output, output[-4000:]
    lines = (root / "attempts.txt").read_text().splitlines()
    assert [line.split(" SLURM")[0] for line in lines] == [
        "attempt 1 mem_mb 300",
        "attempt 2 mem_mb 600",
    ]
    assert len(set(slurm_ids(root / "attempts.txt"))) == 2
    assert (root / "done.txt").exists()
