"""launch/finetune.py killed with SIGKILL in every phase, then ``--resume``: the same final weights (bitwise, CPU)
and the same complete evaluation results as an uninterrupted run.

One run is killed and resumed in turn at each phase (IL step, checkpoint write, stage end, DIPOLE rollout,
scoring, DIPOLE update, checkpoint write in DIPOLE, final evaluation); each kill is a real SIGKILL from outside
while the process waits at a named pause point (``vla.training.pause_points``, ``DIPOLE_PAUSE_AT``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from navsim_eval.evaluation.results import read_rows, row_key
from vla.training.checkpoint import TMP_PREFIX, checkpoints_dir, latest_checkpoint, read_state
from vla.training.pause_points import PAUSE_ENV, PAUSE_MESSAGE

from tests.vla.training.helpers import generate_tiny_world

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "launch" / "finetune.py"
RUN_TIMEOUT_S = int(os.environ.get("DIPOLE_LAUNCH_TIMEOUT_S", "1500"))
"""Per launch; only catches hangs (one launch takes about 13 s of CPU, 9 s of it imports). Override with
DIPOLE_LAUNCH_TIMEOUT_S."""
POLL_S = 0.2

# (pause point, what the newest checkpoint is when the process is killed there: stage, completed stages)
KILLS = [
    ("il.step#3", ("il", [])),  # IL step 3 of 3; the checkpoint of step 2 is the newest
    ("checkpoint.write", ("il", [])),  # writing the IL stage-end checkpoint
    ("il.end", ("il", [])),  # il_model saved, stage-end checkpoint not yet written
    ("rollout", ("il", ["il"])),  # DIPOLE round 0 rollouts: the newest checkpoint ends the IL stage
    ("scoring", ("il", ["il"])),
    ("dipole.step#2", ("dipole", ["il"])),  # round 0 update; the newest checkpoint holds the round's buffer
    ("checkpoint.write", ("dipole", ["il"])),  # writing the round-end checkpoint
    ("final_evaluation", ("dipole", ["il", "dipole"])),  # evaluation rows written, results.md not yet
]


def _arguments(world: Path, out: Path, metric_cache: Path) -> list[str]:
    return [
        f"data.data_root={world}", f"output_dir={out}", f"data.metric_cache_dir={metric_cache}",
        "stages=[il,dipole]", "il.steps=3", "il.batch_size=2", "il.optim.warmup_steps=1", "checkpoint_every=2",
        "dipole.rounds=1", "dipole.steps_per_round=2", "dipole.batch_size=2", "dipole.rollout.num_candidates=2",
        "dipole.rollout.num_steps=2", "dipole.rollout.batch_size=2", "dipole.optim.warmup_steps=0",
        "data.max_train_scenes=2", "data.max_eval_scenes=2", "eval.omegas=[0.0,1.0]", "eval.num_steps=2",
        "eval.batch_size=2", "log_every=1", "tensorboard=false", "progress_bars=false", "reward.num_workers=0",
        "cpu_threads=1",
    ]


def _environment(pause_at: str | None) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.pop(PAUSE_ENV, None)
    if pause_at is not None:
        env[PAUSE_ENV] = pause_at
    return env


def _finish(args: list[str], log: Path) -> None:
    with open(log, "w") as handle:
        proc = subprocess.run([sys.executable, str(SCRIPT)] + args, cwd=REPO_ROOT, env=_environment(None),
                              stdout=handle, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, log.read_text()[-5000:]


def _kill_at(pause_at: str, args: list[str], log: Path) -> None:
    """Start the run, wait until it reports the pause point, SIGKILL it."""
    point = pause_at.split("#")[0]
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, str(SCRIPT)] + args, cwd=REPO_ROOT, env=_environment(pause_at),
                                stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while f"{PAUSE_MESSAGE}{point}\n" not in log.read_text():
            assert proc.poll() is None, f"ended (exit {proc.returncode}) before {pause_at}:\n{log.read_text()[-5000:]}"
            assert time.monotonic() < deadline, f"{pause_at} not reached in {RUN_TIMEOUT_S} s"
            time.sleep(POLL_S)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _weights(path: Path) -> dict:
    return load_file(path / "model.safetensors")


def _assert_bitwise_equal(expected: dict, actual: dict, what: str) -> None:
    assert expected.keys() == actual.keys(), what
    assert [k for k in expected if not torch.equal(expected[k], actual[k])] == [], what


@pytest.mark.slow
def test_sigkill_in_every_phase_then_resume_equals_the_uninterrupted_run(tmp_path):
    world = generate_tiny_world(tmp_path / "world")
    metric_cache = tmp_path / "metric_cache"  # shared: built by the first run, read by the others
    straight, split = tmp_path / "straight", tmp_path / "killed"
    _finish(_arguments(world, straight, metric_cache), tmp_path / "straight.log")

    args = _arguments(world, split, metric_cache)
    for number, (pause_at, (stage, completed)) in enumerate(KILLS):
        _kill_at(pause_at, args if number == 0 else ["--resume"] + args, tmp_path / f"kill{number}.log")
        state = read_state(latest_checkpoint(split))
        assert (state.stage, state.completed_stages) == (stage, completed), pause_at
        if pause_at == "checkpoint.write":
            assert list(checkpoints_dir(split).glob(f"{TMP_PREFIX}*")), "the kill left no half-written checkpoint"
    _finish(["--resume"] + args, tmp_path / "resume.log")

    for model in ("il_model", "model"):
        _assert_bitwise_equal(_weights(straight / model), _weights(split / model), model)
    assert (split / "results.md").read_text() == (straight / "results.md").read_text()
    rows = (split / "eval" / "final" / "results.csv").read_text()
    assert rows == (straight / "eval" / "final" / "results.csv").read_text()
    keys = [row_key(row) for row in read_rows(split / "eval" / "final" / "results.csv")]
    assert len(keys) == 2 * 3 and len(set(keys)) == len(keys)  # 2 scenes x (il, dipole at 2 omegas), once each
