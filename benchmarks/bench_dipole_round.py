"""One DIPOLE round (rollout + update) with the rollout's backbone context reused vs re-encoded per micro-step.

    PYTHONPATH=. python benchmarks/bench_dipole_round.py [--presets tiny-florence2 florence2-large] \\
        [--scenes 4] [--steps 3] [--candidates 4] [--sampler-steps 2] [--repeats 1]

Runs the trainer's own DIPOLE stage (``vla.training.stages.dipole``) on random-weight models and synthetic
scenes with a distance reward, on the CPU, switching ``dipole.reuse_context`` off and on in the same process
(alternating, after one warm-up round) with the same settings. Prints the round time split into rollout and
update, and the off/on ratio of the round time (the speed-up of reusing the context).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import fake_inputs  # noqa: E402

from data_pipelines.configuration import load_config  # noqa: E402
from vla import DipoleVLA, compute_normalization_stats  # noqa: E402
from vla.presets import build_config  # noqa: E402
from vla.training import TrainConfig, Trainer  # noqa: E402

DISTANCE_SCALE_M = 20.0  # reward exp(-mean L2 / 20 m): a smooth stand-in for the PDM score


@dataclass
class DistanceResult:
    scores: np.ndarray
    valid: np.ndarray
    sub_metrics: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)


class DistanceReward:
    def __init__(self, targets: dict[str, np.ndarray]):
        self.targets = targets

    def __call__(self, tokens, poses):
        target = np.stack([self.targets[t] for t in tokens])[:, None]
        score = np.exp(-np.linalg.norm(poses[..., :2] - target[..., :2], axis=-1).mean(-1) / DISTANCE_SCALE_M)
        return DistanceResult(score, np.ones(score.shape, bool), {"score": score})


def bench_preset(preset: str, args) -> dict:
    torch.manual_seed(0)
    inputs, targets = fake_inputs(args.scenes)
    items = [{"token": f"scene{i}", "agent_input": a, "target_poses": t}
             for i, (a, t) in enumerate(zip(inputs, targets))]
    # Random weights and no download: the local word-level tokenizer stands in for a real preset's hub tokenizer.
    policy = DipoleVLA(build_config(preset, ["backbone.tokenizer=null"]))
    policy.set_normalization_stats(compute_normalization_stats(targets))
    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(TrainConfig, None, [
            f"output_dir={out}", "stages=[dipole]", "dipole.rounds=1", f"dipole.steps_per_round={args.steps}",
            f"dipole.batch_size={args.scenes}", f"dipole.rollout.num_candidates={args.candidates}",
            f"dipole.rollout.num_steps={args.sampler_steps}", f"dipole.rollout.batch_size={args.scenes}",
            "dipole.optim.warmup_steps=0", "eval.enabled=false", "tensorboard=false", "progress_bars=false",
            f"log_every={args.steps + 1}", "checkpoint_every=1000000"])
        trainer = Trainer(cfg, Accelerator(cpu=True), items,
                          train_reward=DistanceReward({it["token"]: it["target_poses"] for it in items}))
        stage = trainer.stages["dipole"]
        ctx = trainer.prepare_stage(stage, policy)
        batcher = trainer.batcher(items, policy, "bench scenes")
        times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for index, reuse in enumerate([False] + [False, True] * args.repeats):  # first: warm-up
            trainer.cfg = stage.cfg = replace(cfg, dipole=replace(cfg.dipole, reuse_context=reuse))
            trainer.state.step_in_round = 0
            t0 = time.perf_counter()
            buffer = stage.collect_round(ctx, batcher, 0)
            t1 = time.perf_counter()
            stage.train_round(ctx, batcher, buffer)
            t2 = time.perf_counter()
            if index > 0:
                times[reuse].append((t1 - t0, t2 - t1))
    med = {r: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v)) for r, v in times.items()}
    return {"preset": preset, "off": med[False], "on": med[True],
            "ratio": sum(med[False]) / max(1e-9, sum(med[True]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny-florence2", "tiny-hf-vlm", "tiny-timm-lm"])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps of the round")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--sampler-steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"scenes {args.scenes}, K {args.candidates}, update steps {args.steps} (micro-batch = all scenes), "
          f"sampler steps {args.sampler_steps}, CPU threads {args.threads}")
    print("| preset | re-encode: rollout s | update s | round s | reuse: rollout s | update s | round s | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        r = bench_preset(preset, args)
        (ro0, up0), (ro1, up1) = r["off"], r["on"]
        print(f"| {preset} | {ro0:.2f} | {up0:.2f} | {ro0 + up0:.2f} | {ro1:.2f} | {up1:.2f} | {ro1 + up1:.2f} | "
              f"{r['ratio']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
