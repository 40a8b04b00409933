"""Process pools of the scorer (scoring CLI, reward) whose workers exit when the process that started them dies.

A pool worker blocks on its task queue; after a SIGKILL of its parent nothing closes that queue (the other forked
workers hold it open too), so without a watch it would live on, re-parented, with its memory. Each worker
therefore runs a daemon thread that ends it once its parent process is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Optional, Sequence

PARENT_POLL_S = 0.5  # how often a worker checks that its parent is alive (bounds how long it outlives it)
EXIT_PARENT_GONE = 1


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(EXIT_PARENT_GONE)  # no cleanup: the results have no one left to go to


def _initialize(parent_pid: int, initializer: Optional[Callable[..., Any]], initargs: Sequence[Any]) -> None:
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="exit-with-parent", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def worker_pool(num_workers: int, initializer: Optional[Callable[..., Any]] = None,
                initargs: Sequence[Any] = ()) -> ProcessPoolExecutor:
    """A process pool (fork where available, so workers share the parent's loaded data) whose workers exit when
    this process dies, however it dies."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(num_workers, mp_context=context, initializer=_initialize,
                               initargs=(os.getpid(), initializer, tuple(initargs)))


__all__ = ["PARENT_POLL_S", "worker_pool"]
