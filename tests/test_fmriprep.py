"""fMRIPrep command lines per runtime, runtime checks, and the precomputed-derivatives check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcsp import fmriprep
from mcsp.exceptions import ConfigError
from mcsp.fmriprep import (
    check_precomputed,
    check_runtime,
    fmriprep_command,
    fmriprep_mem_mb,
    thread_counts,
)

SPACE = "MNI152NLin2009cAsym"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A cohort whose image, licence, BIDS root and TemplateFlow folder all exist."""
    for name in ("bids", "templateflow", "out", "work/sub-01"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "fmriprep-25.2.7.sif").write_bytes(b"sif")
    (tmp_path / "license.txt").write_text("licence\n")
    monkeypatch.setattr(fmriprep.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.delenv("TEMPLATEFLOW_HOME", raising=False)
    cohort = {
        "name": "demo",
        "bids_root": str(tmp_path / "bids"),
        "fmriprep": {
            "runtime": "apptainer",
            "derivatives": None,
            "output_space": SPACE,
            "image": str(tmp_path / "fmriprep-25.2.7.sif"),
            "fs_license": str(tmp_path / "license.txt"),
            "templateflow_home": str(tmp_path / "templateflow"),
        },
    }
    return {"cohort": cohort, "root": tmp_path}


def _command(setup: dict, runtime: str, **kwargs) -> list[str]:
    cohort = setup["cohort"]
    cohort["fmriprep"]["runtime"] = runtime
    root = setup["root"]
    options = {"threads": 8, "mem_mb": 32000, **kwargs}
    return fmriprep_command(
        cohort, "sub-01", out_dir=root / "out", work_dir=root / "work" / "sub-01", **options
    )


def _fmriprep_args(threads: int = 8, omp: int = 7, mem: int = 28800) -> list[str]:
    return [
        "/data",
        "/out",
        "participant",
        "--participant-label",
        "01",
        "--output-spaces",
        f"{SPACE}:res-2",
        "--nthreads",
        str(threads),
        "--omp-nthreads",
        str(omp),
        "--mem-mb",
        str(mem),
        "--fs-license-file",
        "/opt/freesurfer/license.txt",
        "-w",
        "/work",
        "--bids-database-dir",
        "/work/bids_db",
        "--notrack",
    ]


@pytest.mark.parametrize("runtime", ["apptainer", "singularity"])
def test_apptainer_command(setup: dict, runtime: str) -> None:
    root = setup["root"]
    assert _command(setup, runtime) == [
        runtime,
        "run",
        "--cleanenv",
        "--env",
        "TEMPLATEFLOW_HOME=/templateflow",
        "-B",
        f"{root}/bids:/data:ro",
        "-B",
        f"{root}/out:/out",
        "-B",
        f"{root}/work/sub-01:/work",
        "-B",
        f"{root}/templateflow:/templateflow",
        "-B",
        f"{root}/license.txt:/opt/freesurfer/license.txt:ro",
        f"{root}/fmriprep-25.2.7.sif",
        *_fmriprep_args(),
    ]


def test_docker_command(setup: dict) -> None:
    root = setup["root"]
    assert _command(setup, "docker") == [
        "docker",
        "run",
        "--rm",
        "-u",
        f"{os.getuid()}:{os.getgid()}",
        "-e",
        "TEMPLATEFLOW_HOME=/templateflow",
        "-v",
        f"{root}/bids:/data:ro",
        "-v",
        f"{root}/out:/out",
        "-v",
        f"{root}/work/sub-01:/work",
        "-v",
        f"{root}/templateflow:/templateflow",
        "-v",
        f"{root}/license.txt:/opt/freesurfer/license.txt:ro",
        "nipreps/fmriprep:25.2.7",
        *_fmriprep_args(),
    ]


def test_docker_image_is_the_pinned_release_and_never_fmriprep_docker(setup: dict) -> None:
    pinned = (fmriprep.REPO_ROOT / "containers" / "fmriprep.yaml").read_text()
    command = _command(setup, "docker")
    assert f"docker_image: {command[command.index('/data') - 1]}" in pinned
    assert "fmriprep-docker" not in command
    assert "-it" not in command and "-t" not in command and "-i" not in command


def test_relative_paths_become_absolute(
    setup: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cohort = setup["cohort"]
    cohort["bids_root"] = "bids"
    cohort["fmriprep"].update(image="fmriprep-25.2.7.sif", fs_license="license.txt")
    command = fmriprep_command(
        cohort, "01", out_dir="out", work_dir="work/sub-01", threads=2, mem_mb=8000
    )
    binds = [command[i + 1] for i, arg in enumerate(command) if arg == "-B"]
    assert [b.split(":")[0] for b in binds] == [
        str(tmp_path / "bids"),
        str(tmp_path / "out"),
        str(tmp_path / "work" / "sub-01"),
        str(tmp_path / "templateflow"),
        str(tmp_path / "license.txt"),
    ]
    assert all(Path(b.split(":")[0]).is_absolute() for b in binds)
    assert str(tmp_path / "fmriprep-25.2.7.sif") in command


def test_work_dir_is_per_subject(setup: dict) -> None:
    root = setup["root"]
    commands = [
        fmriprep_command(
            setup["cohort"],
            subject,
            out_dir=root / "out",
            work_dir=root / "work" / subject,
            threads=4,
            mem_mb=16000,
            check=False,
        )
        for subject in ("sub-01", "sub-02")
    ]
    assert f"{root}/work/sub-01:/work" in commands[0]
    assert f"{root}/work/sub-02:/work" in commands[1]
    assert commands[1][commands[1].index("--participant-label") + 1] == "02"


@pytest.mark.parametrize(
    ("threads", "nthreads", "omp"), [(1, 1, 1), (2, 2, 1), (4, 4, 3), (9, 9, 8), (32, 32, 8)]
)
def test_thread_arithmetic(threads: int, nthreads: int, omp: int) -> None:
    assert thread_counts(threads) == (nthreads, omp)


@pytest.mark.parametrize(
    ("mem_mb", "expected"), [(2048, 1024), (8000, 6976), (16000, 14400), (32000, 28800)]
)
def test_memory_headroom(mem_mb: int, expected: int) -> None:
    assert fmriprep_mem_mb(mem_mb) == expected


def test_resources_reach_the_command(setup: dict) -> None:
    assert (
        _command(setup, "apptainer", threads=1, mem_mb=8000)[-19:]
        == _fmriprep_args(threads=1, omp=1, mem=6976)[-19:]
    )


@pytest.mark.parametrize(("threads", "mem_mb"), [(0, 16000), (4, 2000)])
def test_bad_resources(setup: dict, threads: int, mem_mb: int) -> None:
    with pytest.raises(ConfigError, match="thread|mem_mb"):
        _command(setup, "apptainer", threads=threads, mem_mb=mem_mb)


def test_optional_flags_and_spaces(setup: dict) -> None:
    setup["cohort"]["fmriprep"].update(
        fs_no_reconall=True,
        skip_bids_validation=True,
        output_spaces=[f"{SPACE}:res-2", "MNI152NLin6Asym:res-2", "T1w"],
        extra_args=["--dummy-scans", "4"],
    )
    command = _command(setup, "docker")
    spaces = command.index("--output-spaces")
    assert command[spaces + 1 : spaces + 4] == [f"{SPACE}:res-2", "MNI152NLin6Asym:res-2", "T1w"]
    assert command[-4:] == ["--fs-no-reconall", "--skip-bids-validation", "--dummy-scans", "4"]


def test_output_spaces_must_hold_the_space_mcsp_reads(setup: dict) -> None:
    setup["cohort"]["fmriprep"]["output_spaces"] = ["MNI152NLin6Asym:res-2"]
    with pytest.raises(ConfigError, match="lacks fmriprep.output_space 'MNI152NLin2009cAsym'"):
        _command(setup, "apptainer")


def test_extra_args_cannot_override_managed_flags(setup: dict) -> None:
    setup["cohort"]["fmriprep"]["extra_args"] = ["--nthreads=64"]
    with pytest.raises(ConfigError, match="extra_args contains '--nthreads=64'"):
        _command(setup, "apptainer")


def test_templateflow_home_from_environment(
    setup: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tf-env").mkdir()
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "tf-env"))
    del setup["cohort"]["fmriprep"]["templateflow_home"]
    assert f"{tmp_path}/tf-env:/templateflow" in _command(setup, "apptainer")


def test_check_false_needs_no_binary_or_files(setup: dict, monkeypatch) -> None:
    monkeypatch.setattr(fmriprep.shutil, "which", lambda name: None)
    setup["cohort"]["fmriprep"].update(image="/nowhere/x.sif", fs_license="/nowhere/license.txt")
    command = _command(setup, "apptainer", check=False)
    assert command[0] == "apptainer" and "/nowhere/x.sif" in command


def test_precomputed_runtime_has_no_command(setup: dict) -> None:
    with pytest.raises(ConfigError, match="runtime is precomputed"):
        _command(setup, "precomputed", check=False)


# --- runtime checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runtime", "install"),
    [("apptainer", "install Apptainer"), ("singularity", "SingularityCE"), ("docker", "Docker")],
)
def test_missing_binary(setup: dict, monkeypatch, runtime: str, install: str) -> None:
    monkeypatch.setattr(fmriprep.shutil, "which", lambda name: None)
    setup["cohort"]["fmriprep"]["runtime"] = runtime
    with pytest.raises(ConfigError, match=f"`{runtime}` is not on PATH: .*{install}") as err:
        check_runtime(setup["cohort"])
    assert "config/cohorts/demo.yaml" in str(err.value)
    with pytest.raises(ConfigError):
        _command(setup, runtime)


def test_which_is_asked_for_the_runtime(setup: dict, monkeypatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(fmriprep.shutil, "which", lambda name: asked.append(name) or "/bin/x")
    for runtime in ("apptainer", "singularity", "docker"):
        setup["cohort"]["fmriprep"]["runtime"] = runtime
        check_runtime(setup["cohort"])
    assert asked == ["apptainer", "singularity", "docker"]


def test_missing_image(setup: dict) -> None:
    (setup["root"] / "fmriprep-25.2.7.sif").unlink()
    with pytest.raises(ConfigError, match="apptainer build fmriprep-25.2.7.sif") as err:
        check_runtime(setup["cohort"])
    assert "set fmriprep.image in config/cohorts/demo.yaml" in str(err.value)
    setup["cohort"]["fmriprep"]["runtime"] = "docker"
    check_runtime(setup["cohort"])  # docker needs no image file


def test_unset_image(setup: dict) -> None:
    setup["cohort"]["fmriprep"]["image"] = None
    with pytest.raises(ConfigError, match="fmriprep.image is not set"):
        check_runtime(setup["cohort"])


@pytest.mark.parametrize("runtime", ["apptainer", "docker"])
@pytest.mark.parametrize("licence", [None, "missing.txt"])
def test_missing_licence(setup: dict, runtime: str, licence: str | None) -> None:
    cfg = setup["cohort"]["fmriprep"]
    cfg.update(runtime=runtime, fs_license=licence and str(setup["root"] / licence))
    with pytest.raises(ConfigError) as err:
        check_runtime(setup["cohort"])
    message = str(err.value)
    assert "set fmriprep.fs_license in config/cohorts/demo.yaml" in message
    assert "surfer.nmr.mgh.harvard.edu/registration.html" in message


def test_missing_templateflow(setup: dict) -> None:
    (setup["root"] / "templateflow").rmdir()
    with pytest.raises(ConfigError, match="TemplateFlow folder .* does not exist"):
        check_runtime(setup["cohort"])


def test_missing_bids_root(setup: dict) -> None:
    setup["cohort"]["bids_root"] = str(setup["root"] / "nope")
    with pytest.raises(ConfigError, match="set bids_root in config/cohorts/demo.yaml"):
        check_runtime(setup["cohort"])


def test_precomputed_runtime_check(setup: dict) -> None:
    setup["cohort"]["fmriprep"]["runtime"] = "precomputed"
    with pytest.raises(ConfigError, match="set fmriprep.derivatives"):
        check_runtime(setup["cohort"])
    (setup["root"] / "bids" / "derivatives" / "fmriprep").mkdir(parents=True)
    check_runtime(setup["cohort"])


def test_unknown_runtime(setup: dict) -> None:
    setup["cohort"]["fmriprep"]["runtime"] = "podman"
    with pytest.raises(ConfigError, match="'podman' is not one of"):
        check_runtime(setup["cohort"])


def test_minimal_cohort_uses_defaults(tmp_path: Path) -> None:
    """A cohort dict as validated by today's schema (no proposed keys) still works."""
    cohort = {
        "name": "demo",
        "bids_root": str(tmp_path),
        "fmriprep": {"runtime": "docker", "fs_license": "/lic.txt"},
    }
    command = fmriprep_command(
        cohort, "01", out_dir="/o", work_dir="/w/sub-01", threads=4, mem_mb=16000, check=False
    )
    assert f"{SPACE}:res-2" in command and "--fs-no-reconall" not in command


# --- precomputed derivatives ---------------------------------------------------------------------


def _touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> dict:
    """Raw BIDS + fMRIPrep derivatives: sub-01 (two sessions, two runs), sub-02 (no session)."""
    bids = tmp_path / "bids"
    deriv = bids / "derivatives" / "fmriprep"
    _touch(deriv / "dataset_description.json", b'{"DatasetType": "derivative"}')
    runs = [
        ("sub-01/ses-1/func", "sub-01_ses-1_task-rest_run-1"),
        ("sub-01/ses-1/func", "sub-01_ses-1_task-rest_run-2"),
        ("sub-01/ses-2/func", "sub-01_ses-2_task-rest_run-1"),
        ("sub-02/func", "sub-02_task-rest"),
    ]
    for folder, stem in runs:
        _touch(bids / folder / f"{stem}_bold.nii.gz")
        _touch(bids / folder / f"{stem}_bold.json", b"{}")
        out = deriv / folder
        _touch(out / f"{stem}_space-{SPACE}_res-2_desc-preproc_bold.nii.gz")
        _touch(out / f"{stem}_space-{SPACE}_res-2_desc-preproc_bold.json", b"{}")
        _touch(out / f"{stem}_space-{SPACE}_res-2_desc-brain_mask.nii.gz")
        _touch(out / f"{stem}_space-T1w_desc-preproc_bold.nii.gz")
        _touch(out / f"{stem}_desc-confounds_timeseries.tsv", b"csf\n0.1\n")
        _touch(out / f"{stem}_desc-confounds_timeseries.json", b"{}")
    _touch(bids / "sub-01/anat/sub-01_T1w.nii.gz")
    _touch(bids / "sub-01/ses-1/func/sub-01_ses-1_task-nback_bold.nii.gz")  # not resting state
    _touch(deriv / "sub-01.html")
    cohort = {"name": "demo", "bids_root": str(bids), "fmriprep": {"runtime": "precomputed"}}
    return {"cohort": cohort, "bids": bids, "deriv": deriv}


def test_precomputed_complete(tree: dict) -> None:
    assert check_precomputed(tree["cohort"], "sub-01") is None
    assert check_precomputed(tree["cohort"], "02") is None


def test_precomputed_without_res_entity(tree: dict) -> None:
    func = tree["deriv"] / "sub-02" / "func"
    (func / f"sub-02_task-rest_space-{SPACE}_res-2_desc-preproc_bold.nii.gz").rename(
        func / f"sub-02_task-rest_space-{SPACE}_desc-preproc_bold.nii.gz"
    )
    assert check_precomputed(tree["cohort"], "sub-02") is None


def test_precomputed_missing_preproc(tree: dict) -> None:
    func = tree["deriv"] / "sub-01" / "ses-1" / "func"
    name = f"sub-01_ses-1_task-rest_run-2_space-{SPACE}_res-2_desc-preproc_bold.nii.gz"
    (func / name).unlink()
    reason = check_precomputed(tree["cohort"], "sub-01")
    assert (
        reason == f"fMRIPrep outputs of sub-01 incomplete in {tree['deriv']}: missing {func / name}"
    )
    assert check_precomputed(tree["cohort"], "sub-02") is None


def test_precomputed_only_other_space(tree: dict) -> None:
    tree["cohort"]["fmriprep"]["output_space"] = "MNI152NLin6Asym"
    reason = check_precomputed(tree["cohort"], "sub-02")
    assert reason is not None
    assert reason.endswith("sub-02_task-rest_space-MNI152NLin6Asym_res-2_desc-preproc_bold.nii.gz")


def test_precomputed_missing_confounds(tree: dict) -> None:
    func = tree["deriv"] / "sub-01" / "ses-2" / "func"
    (func / "sub-01_ses-2_task-rest_run-1_desc-confounds_timeseries.tsv").unlink()
    reason = check_precomputed(tree["cohort"], "sub-01")
    assert reason is not None
    assert reason.endswith(
        f"missing {func}/sub-01_ses-2_task-rest_run-1_desc-confounds_timeseries.tsv"
    )


def test_precomputed_several_missing(tree: dict) -> None:
    for path in (tree["deriv"] / "sub-01").rglob("*_desc-confounds_timeseries.tsv"):
        path.unlink()
    reason = check_precomputed(tree["cohort"], "sub-01")
    assert reason is not None and reason.endswith("(and 2 more missing or unusable files)")


def test_precomputed_empty_and_broken_files(tree: dict) -> None:
    func = tree["deriv"] / "sub-02" / "func"
    confounds = func / "sub-02_task-rest_desc-confounds_timeseries.tsv"
    confounds.write_bytes(b"")
    assert "empty file (0 bytes)" in check_precomputed(tree["cohort"], "sub-02")
    confounds.unlink()
    confounds.symlink_to(tree["bids"] / ".git" / "annex" / "objects" / "nothing")
    assert "datalad get" in check_precomputed(tree["cohort"], "sub-02")


def test_precomputed_multi_echo_counts_once(tree: dict) -> None:
    func = tree["bids"] / "sub-03" / "func"
    for echo in (1, 2, 3):
        _touch(func / f"sub-03_task-rest_echo-{echo}_bold.nii.gz")
    out = tree["deriv"] / "sub-03" / "func"
    _touch(out / "sub-03_task-rest_desc-confounds_timeseries.tsv")
    reason = check_precomputed(tree["cohort"], "sub-03")
    assert reason == (
        f"fMRIPrep outputs of sub-03 incomplete in {tree['deriv']}: "
        f"missing {out}/sub-03_task-rest_space-{SPACE}_res-2_desc-preproc_bold.nii.gz"
    )
    _touch(out / f"sub-03_task-rest_space-{SPACE}_res-2_desc-preproc_bold.nii.gz")
    assert check_precomputed(tree["cohort"], "sub-03") is None


def test_precomputed_subject_without_derivatives_or_runs(tree: dict) -> None:
    _touch(tree["bids"] / "sub-04/func/sub-04_task-rest_bold.nii.gz")
    assert "missing " in check_precomputed(tree["cohort"], "sub-04")
    (tree["bids"] / "sub-05" / "anat").mkdir(parents=True)
    assert check_precomputed(tree["cohort"], "sub-05").startswith("no resting-state BOLD run")


def test_precomputed_folder_missing_and_override(tree: dict, tmp_path: Path) -> None:
    tree["cohort"]["fmriprep"]["derivatives"] = str(tmp_path / "elsewhere")
    assert check_precomputed(tree["cohort"], "sub-01") == (
        f"fMRIPrep derivatives folder {tmp_path / 'elsewhere'} does not exist"
    )
    assert check_precomputed(tree["cohort"], "sub-01", derivatives=tree["deriv"]) is None


def test_precomputed_respects_fmri_tasks(tree: dict) -> None:
    tree["cohort"]["fmri"] = {"tasks": ["rest", "nback"]}
    reason = check_precomputed(tree["cohort"], "sub-01")
    assert reason is not None and "sub-01_ses-1_task-nback_space-" in reason


# --- the fmriprep rule in the workflow ----------------------------------------------------------

# Stand-in for the `apptainer` binary (fMRIPrep cannot run here): it records its command line and
# lays out the subject's outputs the way fMRIPrep writes them, copied from the synthetic cohort.
FAKE_APPTAINER = """#!/bin/bash
echo "$@" >> "$MCSP_TEST_CALLS"
out=""; label=""
while [ $# -gt 0 ]; do
  case "$1" in
    -B) case "$2" in *:/out) out="${2%:/out}";; esac; shift 2;;
    --participant-label) label="$2"; shift 2;;
    *) shift;;
  esac
done
cp -r "$MCSP_TEST_SOURCE/sub-$label" "$out/sub-$label"
"""


@pytest.mark.workflow
def test_fmriprep_rule_runs_the_container_and_feeds_parcellation(
    tiny_cohort: Path, tmp_path: Path
) -> None:
    import shutil

    import pandas as pd
    import yaml

    from .conftest import REPO, run, tool, write_workflow_config

    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort, bids, ignore=shutil.ignore_patterns("derivatives"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apptainer"
    fake.write_text(FAKE_APPTAINER)
    fake.chmod(0o755)
    (tmp_path / "fmriprep.sif").write_bytes(b"sif")
    (tmp_path / "license.txt").write_text("licence\n")
    (tmp_path / "templateflow").mkdir()
    config = write_workflow_config(tmp_path, bids=bids)
    cohort_file = tmp_path / "config" / "cohorts" / "synthetic.yaml"
    cohort = yaml.safe_load(cohort_file.read_text())
    cohort["fmriprep"].update(
        runtime="apptainer",
        image=str(tmp_path / "fmriprep.sif"),
        fs_license=str(tmp_path / "license.txt"),
        templateflow_home=str(tmp_path / "templateflow"),
        fs_no_reconall=True,
    )
    cohort_file.write_text(yaml.safe_dump(cohort))
    calls = tmp_path / "calls.txt"
    figure = tmp_path / "results" / "synthetic" / "figures" / "sub-002_atlas-seitzman300_fmri.png"
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
        str(figure),
    ]
    env = {
        "PATH": str(bin_dir),
        "MCSP_TEST_CALLS": str(calls),
        "MCSP_TEST_SOURCE": str(tiny_cohort / "derivatives" / "fmriprep"),
    }
    result = run(cmd, cwd=tmp_path, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    (call,) = calls.read_text().splitlines()  # one subject, one container run
    assert call.startswith("run --cleanenv") and str(tmp_path / "fmriprep.sif") in call
    assert "--participant-label 002" in call and "--fs-no-reconall" in call
    assert f"{tmp_path / 'work'}/fmriprep/synthetic/sub-002:/work" in call
    out = tmp_path / "results" / "synthetic"
    series = sorted((out / "fmri" / "sub-002").rglob("*_atlas-seitzman300_timeseries.tsv"))
    assert len(series) == 2 and figure.is_file()
    sidecar = series[0].with_suffix(".json").read_text()
    assert str(out / "fmriprep" / "sub-002") in sidecar  # parcellated from the rule's output
    assert len(pd.read_csv(series[0], sep="\t")) > 10
    assert not (bids / "derivatives").exists()


# --- fMRIPrep's own wrapper (fmriprep-docker) ---------------------------------------------------


def test_fmriprep_docker_command(setup: dict) -> None:
    root = setup["root"]
    setup["cohort"]["fmriprep"]["templateflow_home"] = None
    assert _command(setup, "fmriprep-docker") == [
        "fmriprep-docker",
        "--no-tty",
        "-i",
        "nipreps/fmriprep:25.2.7",
        "-u",
        f"{os.getuid()}:{os.getgid()}",
        f"{root}/bids",
        f"{root}/out",
        "participant",
        "--participant-label",
        "01",
        "--output-spaces",
        f"{SPACE}:res-2",
        "--nthreads",
        "8",
        "--omp-nthreads",
        "7",
        "--mem_mb",
        "28800",
        "--fs-license-file",
        f"{root}/license.txt",
        "-w",
        f"{root}/work/sub-01",
        "--bids-database-dir",
        f"{root}/work/sub-01/bids_db",
        "--notrack",
    ]


def test_fmriprep_docker_checks(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    setup["cohort"]["fmriprep"]["runtime"] = "fmriprep-docker"
    with pytest.raises(ConfigError, match="cannot bind it .*set fmriprep.runtime to docker"):
        check_runtime(setup["cohort"])
    setup["cohort"]["fmriprep"].update(templateflow_home=None, image=None)
    check_runtime(setup["cohort"])  # no image file, no TemplateFlow folder needed
    monkeypatch.setattr(fmriprep.shutil, "which", lambda name: None if name == "docker" else name)
    with pytest.raises(ConfigError, match="`docker` is not on PATH: install Docker"):
        check_runtime(setup["cohort"])


FAKE_DOCKER = """#!/bin/sh
case "$1" in
  version) echo 27.0.0 ;;
  images) echo 0123abcd ;;
  run) case "$*" in *entrypoint=free*) echo "Mem: 4000 1 1" ;;
       *) echo "$@" > "$FAKE_DOCKER_ARGS" ;; esac ;;
esac
"""


def test_fmriprep_docker_runs_without_a_terminal(
    setup: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wrapper itself, with a fake docker on a 4 GB host and no stdin: no prompt, no -it."""
    import subprocess
    import sys

    wrapper = pytest.importorskip("fmriprep_docker.__main__")
    setup["cohort"]["fmriprep"]["templateflow_home"] = None
    command = _command(setup, "fmriprep-docker")
    (setup["root"] / "work" / "sub-01" / "bids_db").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env["FAKE_DOCKER_ARGS"] = str(tmp_path / "args.txt")
    done = subprocess.run(
        [sys.executable, "-m", wrapper.__package__, *command[1:]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    docker_args = (tmp_path / "args.txt").read_text().split()
    assert "-it" not in docker_args and "-i" not in docker_args
    assert docker_args[docker_args.index("nipreps/fmriprep:25.2.7") + 1 :][:3] == [
        "/data",
        "/out",
        "participant",
    ]
    assert "--mem_mb" in docker_args and "--no-tty" not in docker_args
