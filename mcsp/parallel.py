"""Process pools that are safe after torch (or any threaded library) has been imported."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool whose workers start from a fresh server process (``forkserver``).

    Workers forked from a process whose thread pools (torch's OpenMP, BLAS) are running can
    deadlock on a lock held by a thread that does not exist in the child; ``forkserver`` forks
    them from a clean single-threaded server instead.
    """
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
