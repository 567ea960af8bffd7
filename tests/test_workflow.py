"""The workflow with real snakemake: dry-run from the repository and a real local run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import REPO, run, tool, write_workflow_config


def test_dry_run_from_repository_root() -> None:
    result = run([tool("snakemake"), "-n", "--forceall", "--quiet", "rules"], cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "synth" in out and "cohort_inventory" in out


def test_bad_config_is_named(tmp_path: Path) -> None:
    config = write_workflow_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["synth"]["subjcts"] = 3
    config.write_text(yaml.safe_dump(data))
    result = run(
        [tool("snakemake"), "-s", str(REPO / "Snakefile"), "--configfile", str(config), "-n"],
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode != 0
    assert "did you mean 'synth.subjects'?" in result.stdout + result.stderr


def test_missing_bids_root_is_named(tmp_path: Path) -> None:
    config = write_workflow_config(tmp_path, activate=False)
    result = run(
        [tool("snakemake"), "-s", str(REPO / "Snakefile"), "--configfile", str(config), "-n"],
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode != 0
    assert "does not exist" in result.stdout + result.stderr


@pytest.mark.workflow
def test_local_run_generates_cohort_and_inventory(tmp_path: Path) -> None:
    config = write_workflow_config(tmp_path, subjects=10)
    cmd = [
        tool("snakemake"),
        "-s",
        str(REPO / "Snakefile"),
        "--profile",
        str(REPO / "workflow" / "profiles" / "local"),
        "--configfile",
        str(config),
        "--cores",
        "2",
    ]
    result = run(cmd, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    bids = tmp_path / "resources" / "synthetic"
    assert (bids / "code" / "ground_truth.json").is_file()
    table = pd.read_csv(tmp_path / "results" / "synthetic" / "inventory.tsv", sep="\t", dtype=str)
    assert set(table["modality"]) == {"fmri", "eeg"}
    assert table["subject"].nunique() == 10
    summary = (tmp_path / "results" / "synthetic" / "inventory.txt").read_text()
    assert "synthetic" in summary
    assert (tmp_path / "results" / "logs" / "synth.log").is_file()
    again = run([*cmd, "-n"], cwd=tmp_path, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
