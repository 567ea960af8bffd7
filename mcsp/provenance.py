"""Provenance of a run: code version, package versions, machine, time, config and command line.

:func:`write` saves it as ``<results_dir>/provenance.json`` (the workflow calls it on start); the
HTML report shows that file.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mcsp.io import write_text

PACKAGES = (
    "mcsp",
    "torch",
    "torch_geometric",
    "mne",
    "nilearn",
    "numpy",
    "pandas",
    "scikit-learn",
    "snakemake",
)
REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """``{"commit", "dirty"}`` of the checkout holding the package; both None when it is not
    a git checkout (an installed wheel) or git is missing."""
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top.strip()).resolve() != REPO:
        return {"commit": None, "dirty": None}
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain")
    return {
        "commit": commit.strip() if commit else None,
        "dirty": None if status is None else bool(status.strip()),
    }


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions from the package metadata (nothing is imported); None if absent."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cuda_devices() -> list[str] | None:
    torch = sys.modules.get("torch")  # never imported here: only reported when already loaded
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken driver must not stop a run
        return None


def collect(
    config: Mapping[str, Any] | None = None, argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """The provenance record of the current process.

    Args:
        config: the validated workflow config (None when unknown).
        argv: the command line (None when unknown).

    Returns:
        A JSON-serialisable dict: ``git``, ``versions``, ``machine``, ``time_utc``, ``config``,
        ``argv``.
    """
    return {
        "git": git_state(),
        "versions": package_versions(),
        "machine": {
            "platform": platform.platform(),
            "hostname": socket.gethostname(),
            "cpu_count": os.cpu_count(),
            "memory_bytes": _memory_bytes(),
            "cuda_devices": _cuda_devices(),
        },
        "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": None if config is None else json.loads(json.dumps(config, default=str)),
        "argv": None if argv is None else [str(a) for a in argv],
    }


def write(
    results_dir: str | Path,
    config: Mapping[str, Any] | None = None,
    argv: Sequence[str] | None = None,
) -> Path:
    """Write :func:`collect` to ``<results_dir>/provenance.json`` atomically; returns the path."""
    record = collect(config, argv)
    return write_text(Path(results_dir) / "provenance.json", json.dumps(record, indent=2) + "\n")
