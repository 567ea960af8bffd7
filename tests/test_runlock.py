"""One run per results folder: the lock names the other run; a dead run's lock is taken over."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from mcsp.runlock import LOCK_NAME, RunLockError, acquire, release


def _plant(folder: Path, **holder: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    path.write_text(
        json.dumps({"started": "2026-11-30T10:00:00", "command": "snakemake", **holder})
    )
    return path


def test_live_run_of_this_host_blocks(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _plant(tmp_path, host=platform.node(), pid=other.pid, cwd="/elsewhere/checkout")
        with pytest.raises(RunLockError) as info:
            acquire(tmp_path)
        message = str(info.value)
        assert f"PID {other.pid}" in message and platform.node() in message
        assert "/elsewhere/checkout" in message and "own results_dir" in message
    finally:
        other.kill()
        other.wait()


def test_another_host_blocks_and_says_how_to_clear(tmp_path: Path) -> None:
    path = _plant(tmp_path, host="node-17.cluster", pid=4242)
    with pytest.raises(RunLockError, match="host node-17.cluster, PID 4242") as info:
        acquire(tmp_path)
    assert f"delete {path}" in str(info.value)


def test_dead_run_lock_is_taken_over_and_released(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _plant(tmp_path, host=platform.node(), pid=dead.pid)
    path = acquire(tmp_path / ".", "snakemake --cores 2")
    holder = json.loads(path.read_text())
    assert holder["command"] == "snakemake --cores 2" and holder["host"] == platform.node()
    assert acquire(tmp_path) == path  # re-entrant for its holder
    release(path)
    assert not path.exists()
    _plant(tmp_path, host="other", pid=1)
    release(tmp_path / LOCK_NAME)  # not ours: left alone
    assert (tmp_path / LOCK_NAME).exists()
