"""One workflow run per results folder: a lock file names the run that holds it (host, PID,
start, command), so a second run into the same ``results_dir`` (another checkout, another
terminal) stops with a message instead of writing the same files at the same time.

Snakemake's own lock (``.snakemake/locks``) guards only one working directory; two checkouts with
a shared ``results_dir`` have two working directories and so two Snakemake locks.
"""

from __future__ import annotations

import atexit
import datetime
import json
import os
import platform
import sys
from pathlib import Path

from mcsp.exceptions import McspError

LOCK_NAME = ".mcsp-run.lock"


class RunLockError(McspError):
    """Another run holds the results folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def acquire(results_dir: str | Path, command: str | None = None) -> Path:
    """Take the lock of ``results_dir`` for this process; released when it exits (or by
    :func:`release`). A lock left by a dead process of this host is taken over.

    Raises:
        RunLockError: a live run (this host) or a run of another host holds it.
    """
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {
        "host": platform.node(),
        "pid": os.getpid(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command or " ".join(sys.argv),
        "cwd": str(Path.cwd()),
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            other = _holder(path)
            if other.get("host") == me["host"] and other.get("pid") == me["pid"]:
                return path  # already ours
            stale = other.get("host") == me["host"] and not _alive(int(other.get("pid", -1)))
            if not stale:
                raise RunLockError(_message(path, other)) from None
            path.unlink(missing_ok=True)  # its run was killed: take it over
            continue
        with os.fdopen(fd, "w") as stream:
            json.dump(me, stream, indent=1)
        atexit.register(release, path)
        return path
    raise RunLockError(_message(path, _holder(path)))


def _message(path: Path, other: dict) -> str:
    who = (
        f"host {other.get('host', '?')}, PID {other.get('pid', '?')}, started "
        f"{other.get('started', '?')}, in {other.get('cwd', '?')}: {other.get('command', '?')}"
    )
    return (
        f"{path.parent}: another workflow run is writing this results folder ({who}). Wait for "
        "it to finish, or give this run its own results_dir. If that run is no longer running "
        f"(killed on another machine), delete {path} and rerun."
    )


def release(path: str | Path) -> None:
    """Remove the lock at ``path`` if this process holds it."""
    path = Path(path)
    holder = _holder(path)
    if holder.get("pid") == os.getpid() and holder.get("host") == platform.node():
        path.unlink(missing_ok=True)
