"""Logging for rule scripts: everything a step says, and its traceback, goes to the rule's log."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

from mcsp.io import disk_full

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to(path: str | Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send logging and stderr to ``path`` for the duration of a rule script.

    An exception is written to the log with its traceback and re-raised, so Snakemake marks the
    job failed and ``--show-failed-logs`` shows why; a full disk is re-raised as
    :class:`mcsp.io.DiskFullError`, which names the folder and the fix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as stream, contextlib.redirect_stderr(stream):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)
        logger = logging.getLogger("mcsp")
        job = os.environ.get("SLURM_JOB_ID")
        logger.info("host %s%s", platform.node(), f", SLURM job {job}" if job else "")
        try:
            yield logger
        except OSError as err:
            full = disk_full(err, err.filename or path)
            if full is None:
                logger.exception("step failed")
                raise
            logger.error("%s", full)
            raise full from err
        except BaseException:
            logger.exception("step failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stderr.flush()
