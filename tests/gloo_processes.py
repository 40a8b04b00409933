"""Run a test body in several spawned processes joined in one gloo process group (CPU multi-process tests).

``run_in_gloo_processes(body, args)`` starts ``world_size`` processes; each joins the group, calls
``body(rank, *args)`` and leaves it. Any rank's exception is sent back and fails the test with every rank's
message; a rank that hangs is killed after ``timeout_s``. ``body`` must be a module-level function (spawn).
"""

from __future__ import annotations

import os
import socket
from typing import Callable

import torch.distributed as dist
import torch.multiprocessing as mp

SPAWN = mp.get_context("spawn")
"""The start method of every process and queue these tests share (CUDA- and fork-safe)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(body: Callable, rank: int, world_size: int, port: int, errors, args: tuple) -> None:
    try:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
        body(rank, *args)
        dist.destroy_process_group()
    except BaseException as err:  # reported to the parent; a hung peer is ended by the join timeout
        errors.put(f"rank {rank}: {type(err).__name__}: {err}")
        raise


def run_in_gloo_processes(body: Callable, args: tuple = (), world_size: int = 2, timeout_s: float = 600) -> None:
    errors = SPAWN.SimpleQueue()
    port = free_port()
    procs = [SPAWN.Process(target=_rank_main, args=(body, rank, world_size, port, errors, args))
             for rank in range(world_size)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=timeout_s)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    assert not messages, "\n".join(messages)
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]
