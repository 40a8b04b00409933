"""Run a test body in several spawned processes joined in one gloo process group (CPU multi-process tests).

``run_in_gloo_processes(body, args)`` starts ``world_size`` processes; each joins the group, calls
``body(rank, *args)`` and leaves it. Any rank's exception is sent back and fails the test with every rank's
message; a rank that hangs is killed after ``timeout_s``. ``body`` must be a module-level function (spawn).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch.distributed as dist
import torch.multiprocessing as mp

SPAWN = mp.get_context("spawn")
"""The start method of every process and queue these tests share (CUDA- and fork-safe)."""


def _rank_main(body: Callable, rank: int, world_size: int, store_file: str, errors, args: tuple) -> None:
    try:
        # a file store, not a TCP port: a port picked free here can be taken by another process before the
        # ranks bind it (seen as rare failures when these tests ran right after other multi-process tests)
        dist.init_process_group("gloo", init_method=Path(store_file).as_uri(), rank=rank, world_size=world_size)
        body(rank, *args)
        dist.destroy_process_group()
    except BaseException as err:  # reported to the parent; a hung peer is ended by the join timeout
        errors.put(f"rank {rank}: {type(err).__name__}: {err}")
        raise
    # The body passed and the group is left: exit without the interpreter's teardown. Once in a full CI run on
    # the loaded 2-core machine a rank aborted there, after a passing body ("terminate called without an active
    # exception", exit code -6, from a C++ destructor); what the tests check had all been done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_in_gloo_processes(body: Callable, args: tuple = (), world_size: int = 2, timeout_s: float = 600) -> None:
    errors = SPAWN.SimpleQueue()
    store_dir = tempfile.mkdtemp(prefix="gloo_store_")
    store_file = str(Path(store_dir) / "store")  # must not exist yet: the ranks create it
    procs = [SPAWN.Process(target=_rank_main, args=(body, rank, world_size, store_file, errors, args))
             for rank in range(world_size)]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=timeout_s)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        shutil.rmtree(store_dir, ignore_errors=True)
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    assert not messages, "\n".join(messages)
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]
