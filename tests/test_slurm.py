"""A real run through the local SLURM cluster with the shipped profile, as a user types it."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from .conftest import REPO, run, slurm_up, tool, write_workflow_config

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def cluster() -> None:
    if not slurm_up():
        pytest.skip("no SLURM controller answers (CI starts one with .ci/slurm-up.sh)")


def test_profile_slurm_runs_every_rule_as_a_slurm_job(cluster: None, tmp_path: Path) -> None:
    config = write_workflow_config(tmp_path, subjects=4, threads=1)
    result = run(
        [tool("snakemake"), "--profile", "slurm", "--configfile", str(config)],
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
        "qc": [logs / "synthetic" / "fmri_qc.log", logs / "synthetic" / "eeg_qc.log"],
        "store": [logs / "store.log"],
        "pretrain": [logs / "pretrain" / "all.log"],
        "finetune": sorted((logs / "evaluation" / "main" / "mcsp").rglob("*.log")),
        "baseline": sorted((logs / "evaluation" / "main" / "fc_logreg").rglob("*.log")),
        "metrics": [logs / "metrics.log"],
    }
    for rule, paths in rules.items():
        assert paths, f"no log of rule {rule}"
        for log in paths:
            assert re.search(r"SLURM job \d+", log.read_text()), f"{log}: not a SLURM job"


def test_failing_job_is_reported_not_hung(cluster: None, tmp_path: Path) -> None:
    config = write_workflow_config(tmp_path, activate=False)
    cohort = tmp_path / "config" / "cohorts" / "synthetic.yaml"
    empty = tmp_path / "empty_bids"
    empty.mkdir()
    cohort.write_text(
        cohort.read_text().replace(str(tmp_path / "resources" / "synthetic"), str(empty))
    )
    result = run(
        [tool("snakemake"), "--profile", "slurm", "--configfile", str(config)],
        cwd=REPO,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode not in (0, -9, 137), "snakemake must fail, not succeed or hang"
    assert "cohort_inventory" in output
    log = (tmp_path / "results" / "logs" / "synthetic" / "inventory.log").read_text()
    assert re.search(r"SLURM job \d+", log)
    assert str(empty) in log
