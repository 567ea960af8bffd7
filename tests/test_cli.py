"""The mcsp console script: synth, cohort check, config check."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from mcsp.cli import main

from .conftest import REPO, run, tool


def test_console_script_is_installed() -> None:
    result = run([tool("mcsp"), "--help"], cwd=REPO, timeout=60)
    assert result.returncode == 0
    for command in ("synth", "cohort", "config"):
        assert command in result.stdout


def test_cohort_check_prints_summary_and_writes_table(
    tiny_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = yaml.safe_load((REPO / "config" / "cohorts" / "synthetic.yaml").read_text())
    cohort["bids_root"] = str(tiny_cohort)
    cohort_file = tmp_path / "synthetic.yaml"
    cohort_file.write_text(yaml.safe_dump(cohort))
    out = tmp_path / "out" / "inventory.tsv"
    assert main(["cohort", "check", str(cohort_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "synthetic" in printed
    table = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    assert {"fmri", "eeg"} <= set(table["modality"])
    assert out.with_suffix(".txt").read_text().strip() == printed.strip()


def test_cohort_check_bad_cohort_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort_file = tmp_path / "abc.yaml"
    cohort_file.write_text("name: abc\nbids_rot: /x\n")
    assert main(["cohort", "check", str(cohort_file)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'bids_root'?" in err and str(cohort_file) in err


def test_cohort_check_missing_bids_root_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort_file = tmp_path / "abc.yaml"
    cohort_file.write_text(f"name: abc\nbids_root: {tmp_path / 'nowhere'}\n")
    assert main(["cohort", "check", str(cohort_file), "--out", str(tmp_path / "i.tsv")]) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err


def test_config_check(capsys: pytest.CaptureFixture[str]) -> None:
    files = [REPO / "config" / "config.yaml", REPO / "config" / "cohorts" / "synthetic.yaml"]
    assert main(["config", "check", *map(str, files)]) == 0
    assert capsys.readouterr().out.count("valid") == 2


def test_synth_command(tmp_path: Path) -> None:
    out = tmp_path / "bids"
    argv = ["synth", "--out", str(out), "--subjects", "2", "--seed", "3"]
    argv += ["--eeg-duration", "5", "--fmri-volumes", "30", "--voxel-size", "8"]
    assert main(argv) == 0
    participants = pd.read_csv(out / "participants.tsv", sep="\t")
    assert len(participants) == 2
