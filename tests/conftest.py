"""Shared fixtures: repository paths, a tiny synthetic cohort, and workflow run helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHARED_DATA = REPO.parent / "shared" / "data"

# A tiny synthetic cohort: enough subjects for every kind (fMRI only, EEG only, two sessions).
TINY_SYNTH = {
    "subjects": 10,
    "seed": 7,
    "eeg_duration_s": 12,
    "fmri_volumes": 40,
    "fmri_voxel_size_mm": 6,
    "threads": 1,
}


def tool(name: str) -> str:
    """Path of a console script installed beside the running Python (the project's venv)."""
    path = BIN / name
    return str(path) if path.exists() else name


def run(
    cmd: list[str], cwd: Path, timeout: int, env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """Run a command under a hard kill time-out; output captured as text.

    The venv's bin folder leads PATH; ``env`` adds variables (a ``PATH`` there goes first).
    """
    return subprocess.run(
        ["timeout", "-s", "KILL", str(timeout), *cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=command_env(env),
        **kwargs,
    )


def command_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a test's command: this one, the venv's bin folder leading PATH, and
    ``env`` added (a ``PATH`` there goes first)."""
    extra = dict(env or {})
    path = ":".join(p for p in (extra.pop("PATH", ""), str(BIN), os.environ.get("PATH", "")) if p)
    return {**os.environ, **extra, "PATH": path}


# Settings that let the tiny cohort's short recordings through (the defaults need 30 s of EEG).
TINY_SETTINGS = {
    "eeg": {"preprocessing": {"min_clean_s": 5.0}},
    "study": {
        "fmri_window": 20,
        "fmri_stride": 10,
        "eeg_segment_s": 4.0,
        "eeg_stride_s": 4.0,
        "folds": 3,
        "stratify_label": "sex",
    },
    "model": {
        "hidden": 16,
        "proj_dim": 8,
        "graph": {"layers": 1, "heads": 2, "pe_dim": 4},
        "sequence": {"layers": 1, "heads": 2, "patches": 4},
    },
    "pretrain": {"epochs": 2, "batch_size": 8, "num_workers": 0, "warmup_steps": 2},
    "finetune": {"epochs": 2, "patience": 1, "batch_size": 8},
    "evaluate": {"tasks": ["sex"], "seeds": 1, "models": ["mcsp", "fc_logreg"]},
}


def write_workflow_config(
    root: Path, bids: Path | None = None, settings: dict | None = None, **synth
) -> Path:
    """Lay out config/ for a workflow run inside ``root`` on a tiny synthetic cohort.

    ``bids``: use this existing cohort instead of generating one; ``settings``: top-level
    config blocks to add (default ``TINY_SETTINGS``).
    """
    shutil.copytree(REPO / "config", root / "config", dirs_exist_ok=True)
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config.update(TINY_SETTINGS if settings is None else settings)
    config["synth"].update({**TINY_SYNTH, **synth})
    for key in ("cohorts_dir", "results_dir", "work_dir"):
        config[key] = str(root / config[key])
    config["synth"]["out"] = str(root / "resources" / "synthetic")
    if bids is not None:
        config["synth"]["activate"] = False
    cohort_file = root / "config" / "cohorts" / "synthetic.yaml"
    cohort = yaml.safe_load(cohort_file.read_text())
    cohort["bids_root"] = str(bids) if bids is not None else config["synth"]["out"]
    cohort_file.write_text(yaml.safe_dump(cohort))
    path = root / "config" / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic BIDS cohort, generated once per test session (read only)."""
    from mcsp.synth import generate_cohort

    out = tmp_path_factory.mktemp("synth") / "bids"
    params = {k: v for k, v in TINY_SYNTH.items() if k not in ("subjects", "seed", "threads")}
    generate_cohort(out, TINY_SYNTH["subjects"], TINY_SYNTH["seed"], n_jobs=2, **params)
    return out


def slurm_up() -> bool:
    """True when a SLURM controller answers; CI (MCSP_REQUIRE_SLURM=1) insists on one."""
    if shutil.which("sinfo") is not None:
        probe = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return True
    if os.environ.get("MCSP_REQUIRE_SLURM") == "1":
        pytest.fail("MCSP_REQUIRE_SLURM=1 but no SLURM controller answers: run .ci/slurm-up.sh")
    return False
