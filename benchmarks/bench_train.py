"""Training-step throughput and peak memory of IL and DIPOLE steps for every tiny model preset.

    python benchmarks/bench_train.py [--batch 8] [--candidates 8] [--steps 5] [--presets tiny-florence2 ...]

An IL step is one optimizer step of ``loss_il`` on B scenes (logged trajectories); a DIPOLE step is one
optimizer step of ``loss_dipole`` on the same B scenes with K scored candidates each (backbone features computed
once per scene, both adapters in one batched head forward). Printed: samples/s (scenes/s and trajectories/s),
peak memory (CUDA: max allocated; CPU: peak resident-set growth over the warmed-up steps, which the CPU
allocator's reuse keeps small) and the DIPOLE/IL step-time ratio per step (same B scenes; target <= 1.3) and
per trajectory (a DIPOLE step trains on K trajectories per scene, an IL step on one).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import numpy as np
import torch

from data_pipelines.types import CAMERA_NAMES, AgentInput, Camera, Cameras, EgoStatus, Lidar
from vla import DipoleVLA, compute_normalization_stats
from vla.presets import build_config, list_presets

IMAGE_HW = (144, 256)  # synthetic-world camera size
RSS_POLL_S = 0.002


def fake_inputs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    for _ in range(n):
        speed = float(rng.uniform(2, 10))
        statuses = [EgoStatus(np.array([-(3 - i) * 0.5 * speed, 0.0, 0.0]), np.array([speed, 0.0]), np.zeros(2),
                              np.array([0, 1, 0, 0])) for i in range(4)]
        cams = []
        for i in range(4):
            c = {name.lower(): Camera() for name in CAMERA_NAMES}
            if i == 3:
                for name in ("cam_l0", "cam_f0", "cam_r0"):
                    c[name] = Camera(image=rng.integers(0, 255, IMAGE_HW + (3,), dtype=np.uint8))
            cams.append(Cameras(**c))
        inputs.append(AgentInput(statuses, cams, [Lidar() for _ in range(4)]))
        t = 0.5 * np.arange(1, 9)
        targets.append(np.stack([speed * t, np.zeros(8), np.zeros(8)], 1).astype(np.float32))
    return inputs, np.stack(targets)


class PeakMemory:
    """Peak memory growth during a block (CUDA allocator, else resident set size sampled by a thread)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mb = 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            import psutil

            self.proc = psutil.Process(os.getpid())
            self.base = self.proc.memory_info().rss
            self.peak = self.base
            self.running = True
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _poll(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(RSS_POLL_S)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        else:
            self.running = False
            self.thread.join()
            self.peak_mb = (self.peak - self.base) / 2**20


def time_steps(step_fn, steps: int, device) -> tuple[float, float]:
    step_fn()  # warm-up
    times = []
    with PeakMemory(device) as mem:
        for _ in range(steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            step_fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), mem.peak_mb


def bench_preset(preset: str, batch: int, k: int, steps: int, device) -> dict:
    torch.manual_seed(0)
    model = DipoleVLA(build_config(preset)).to(device)
    inputs, targets = fake_inputs(batch)
    model.set_normalization_stats(compute_normalization_stats(targets))
    processor = model.processor
    rng = np.random.default_rng(1)
    candidates = targets[:, None] + rng.normal(0, 1.0, (batch, k, 8, 3)).astype(np.float32)
    g = torch.from_numpy(rng.normal(size=(batch, k)).astype(np.float32)).to(device)

    def to_device(b):
        return {key: v.to(device) if torch.is_tensor(v) else v for key, v in b.items()}

    model.set_trainable("base")
    opt_il = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)

    def il_step():
        b = to_device(processor(inputs, target_poses=targets))
        loss = model.loss_il(b)
        loss.backward()
        opt_il.step()
        opt_il.zero_grad(set_to_none=True)

    il_s, il_mem = time_steps(il_step, steps, device)

    model.set_trainable("adapters")
    opt_dp = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    poses = torch.from_numpy(candidates).to(device)

    def dipole_step():
        b = to_device(processor(inputs))
        b["target_poses"] = poses
        out = model.loss_dipole(b, g, beta=1.0)
        out.loss.backward()
        opt_dp.step()
        opt_dp.zero_grad(set_to_none=True)

    calls = []
    hook = model.backbone.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    dipole_step()
    hook.remove()
    dp_s, dp_mem = time_steps(dipole_step, steps, device)
    return {"preset": preset, "il_step_s": il_s, "il_scenes_per_s": batch / il_s, "il_mem_mb": il_mem,
            "dipole_step_s": dp_s, "dipole_scenes_per_s": batch / dp_s, "dipole_traj_per_s": batch * k / dp_s,
            "dipole_mem_mb": dp_mem, "ratio": dp_s / il_s, "ratio_per_traj": dp_s / (il_s * k),
            "backbone_rows_per_dipole_step": sum(calls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8, help="scenes per step")
    parser.add_argument("--candidates", type=int, default=8, help="K candidates per scene (DIPOLE)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--presets", nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    presets = args.presets or [p for p in list_presets() if p.startswith("tiny")]
    print(f"device {device}, B={args.batch} scenes, K={args.candidates}, {args.steps} timed steps, "
          f"{args.threads} thread(s)")
    print("| preset | IL step ms | IL scenes/s | IL peak MB | DIPOLE step ms | DIPOLE scenes/s | DIPOLE traj/s "
          "| DIPOLE peak MB | DIPOLE/IL per step | per trajectory | backbone rows per DIPOLE step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for preset in presets:
        r = bench_preset(preset, args.batch, args.candidates, args.steps, device)
        batch = args.batch
        print(f"| {preset} | {1e3 * r['il_step_s']:.1f} | {r['il_scenes_per_s']:.1f} | {r['il_mem_mb']:.0f} | "
              f"{1e3 * r['dipole_step_s']:.1f} | {r['dipole_scenes_per_s']:.1f} | {r['dipole_traj_per_s']:.1f} | "
              f"{r['dipole_mem_mb']:.0f} | {r['ratio']:.2f}x | {r['ratio_per_traj']:.2f}x | "
              f"{r['backbone_rows_per_dipole_step']} (B = {batch}) |", flush=True)


if __name__ == "__main__":
    main()
