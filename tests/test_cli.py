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


def test_fmri_parcellate_command(tiny_cohort: Path, tmp_path: Path, capsys) -> None:
    bold = sorted(tiny_cohort.glob("derivatives/fmriprep/sub-*/ses-1/func/*preproc_bold.nii.gz"))
    out = tmp_path / "sub-x_task-rest_atlas-seitzman300_timeseries.tsv"
    config = REPO / "config" / "config.yaml"
    assert (
        main(["fmri", "parcellate", str(bold[-1]), "--out", str(out), "--config", str(config)]) == 0
    )
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert capsys.readouterr().out.startswith(f"{out}: ")
    missing = ["fmri", "parcellate", str(tmp_path / "x_bold.nii.gz"), "--out", str(out)]
    assert main(missing) == 0  # recorded as an exclusion, as in the workflow
    assert "excluded" in capsys.readouterr().out
    assert pd.read_csv(out, sep="\t").empty
    assert main([*missing, "--strict"]) == 2
    assert "not an fMRIPrep preprocessed BOLD" in capsys.readouterr().err


def test_cohort_import_command(tmp_path: Path, capsys) -> None:
    from .test_imports import make_abide

    cohort, _ = make_abide(tmp_path / "abide")
    cohort_file = tmp_path / f"{cohort['name']}.yaml"
    cohort_file.write_text(yaml.safe_dump(cohort))
    assert main(["cohort", "import", str(cohort_file), "--out", str(tmp_path / "out")]) == 0
    qc = pd.read_csv(tmp_path / "out" / "fmri_qc.tsv", sep="\t", dtype=str)
    assert (qc["status"] == "ok").sum() >= 2 and (qc["status"] == "excluded").any()
    assert (tmp_path / "out" / "inventory.tsv").is_file()
    assert "imported" in capsys.readouterr().out


def test_eeg_clean_command(tiny_cohort: Path, tmp_path: Path, capsys) -> None:
    recording = sorted(tiny_cohort.glob("sub-*/ses-1/eeg/*_task-eyesclosed_eeg.vhdr"))[0]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"eeg": {"preprocessing": {"min_clean_s": 5.0}}}))
    cohort = REPO / "config" / "cohorts" / "synthetic.yaml"
    args = ["eeg", "clean", str(recording), "--out-dir", str(tmp_path / "out")]
    assert main([*args, "--config", str(config), "--cohort", str(cohort)]) == 0
    stem = recording.name.removesuffix("_eeg.vhdr")
    assert (tmp_path / "out" / f"{stem}_desc-clean_eeg.fif").is_file()
    assert (tmp_path / "out" / f"{stem}_report.html").is_file()
    assert capsys.readouterr().out.strip().endswith(": ok")


def test_config_check_agrees_with_the_workflow_on_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing bids_root, or a file in its place, is an error here as in the workflow."""
    cohorts = tmp_path / "cohorts"
    cohorts.mkdir()
    missing = cohorts / "gone.yaml"
    missing.write_text(f"name: gone\nbids_root: {tmp_path / 'nowhere'}\n")
    assert main(["config", "check", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "bids_root" in err and "does not exist" in err and str(missing) in err
    (tmp_path / "afile").write_text("x")
    a_file = cohorts / "file.yaml"
    a_file.write_text(f"name: file\nbids_root: {tmp_path / 'afile'}\n")
    assert main(["config", "check", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_config_check_refuses_two_cohorts_on_one_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cohort file copied under a new name reads the same subjects: refused."""
    bids = tmp_path / "bids"
    (bids / "derivatives").mkdir(parents=True)
    cohorts = tmp_path / "cohorts"
    cohorts.mkdir()
    for name, root in (("site", bids), ("sitecopy", bids), ("inner", bids / "derivatives")):
        (cohorts / f"{name}.yaml").write_text(f"name: {name}\nbids_root: {root}\n")
    assert main(["config", "check", str(cohorts / "site.yaml"), str(cohorts / "inner.yaml")]) == 2
    err = capsys.readouterr().err
    assert "'site'" in err and "'inner'" in err and "read the same input folder" in err
    assert (
        main(["config", "check", str(cohorts / "site.yaml"), str(cohorts / "sitecopy.yaml")]) == 2
    )
    assert main(["config", "check", str(cohorts / "site.yaml")]) == 0


def test_a_modality_whose_recordings_were_all_excluded_is_named(tmp_path: Path) -> None:
    """22 runs excluded for a confounds file that fits no strategy: the end-of-run warning."""
    from mcsp.qc import lost_modalities

    folder = tmp_path / "hbn"
    folder.mkdir()
    confounds = "/data/sub-01_desc-confounds_timeseries.tsv"
    reason = f"Confounds file {confounds} does not fit strategy 'simple'"
    pd.DataFrame(
        {"subject": [f"{i:02d}" for i in range(22)], "status": "excluded", "reason": reason}
    ).to_csv(folder / "fmri_qc.tsv", sep="\t", index=False)
    eeg = {"subject": ["01", "02", "03"], "status": ["ok", "excluded", "missing"], "reason": ""}
    pd.DataFrame(eeg).to_csv(folder / "eeg_qc.tsv", sep="\t", index=False)
    messages = lost_modalities(tmp_path, ["hbn", "absent"])
    assert len(messages) == 1
    assert "cohort hbn: all 22 fMRI runs were excluded" in messages[0]
    assert "22 × Confounds file <file> does not fit strategy 'simple'" in messages[0]


def test_config_check_reads_the_pretraining_variants(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    bad = tmp_path / "variants.yaml"
    bad.write_text("pretrain:\n  variants:\n    x: {model: {domain: [spatial]}}\n")
    assert main(["config", "check", str(bad)]) == 2
    assert "did you mean 'model.domains'" in capsys.readouterr().err
    assert main(["config", "check", str(REPO / "config" / "experiments" / "paper.yaml")]) == 0
