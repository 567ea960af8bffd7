"""Writing outputs safely: each file goes to a temporary name in its folder and is renamed into
place once complete, so a killed job or a full disk never leaves a partial output behind, and a
full disk is reported as such (the folder, the space left, the fix) instead of a bare OSError."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from mcsp.exceptions import McspError


class DiskFullError(McspError):
    """No space (or quota) left in the folder an output is written to."""


def disk_full(err: OSError, path: str | Path) -> DiskFullError | None:
    """A :class:`DiskFullError` naming the folder of ``path`` when ``err`` says the disk or the
    quota is full; None for any other error."""
    if err.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    folder = Path(path).resolve().parent
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MB free now"
    except OSError:
        free = "free space unknown"
    return DiskFullError(
        f"{folder}: no space left on the device ({free}; {os.strerror(err.errno)}) while "
        f"writing {Path(path).name}. Free space there, or set results_dir / work_dir to a "
        "larger disk, then rerun the same command: no partial file was left behind."
    )


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so readers and writers that look at
    the extension work); on success it is renamed to ``path``, on any error it is removed.

    Raises:
        DiskFullError: the write failed because the disk or quota is full.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        full = disk_full(err, path)
        if full is not None:
            raise full from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_output`)."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return Path(path)
