"""Every GPU figure of the real training stack in one run (Florence-2-large preset, random weights, bf16).

    python benchmarks/gpu_figures.py --out gpu_figures.json                    # on one GPU
    python benchmarks/gpu_figures.py --preset tiny-florence2 --device cpu --skip-launch   # a dry run

Measured, each against a baseline taken in the same run:
1. planning latency per scene, batch 1, ``--steps`` denoising steps: guided two-branch (omega 0.5) vs the IL
   head (``mode="base"``); targets <= 40 ms/scene and guided/IL <= 1.2;
2. training steps in bf16 (plain PyTorch, one device): IL and DIPOLE (K candidates) samples/s, peak memory and
   model FLOPs utilisation (FLOPs counted by ``torch.utils.flop_counter`` on one step, divided by the step
   time and ``--peak-tflops``, the GPU's dense bf16 peak, H100/H200 SXM: 989);
3. ZeRO-2: ``launch/finetune.py`` under ``configs/accelerate/deepspeed_zero2.yaml`` for a few IL steps and one
   DIPOLE round on a generated tiny synthetic world (samples/s as the trainer logs it, wall time);
4. a bf16 checkpoint written, reloaded (``dtype="auto"``) and evaluated by ``launch/evaluate.py`` on that world.
Prints the JSON object (also written to ``--out``) with the GPU model after every part; a part that fails is
recorded with its error, the others still run, and the exit status is then non-zero.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_model import timed  # noqa: E402
from vla import DipoleVLA, compute_normalization_stats  # noqa: E402
from vla.presets import build_config  # noqa: E402
from vla.testing import make_target_poses  # noqa: E402

LATENCY_TARGET_S = 0.040  # issue target: guided planning <= 40 ms per scene
LATENCY_RATIO_TARGET = 1.2  # issue target: guided <= 1.2 x IL
# the launched run uses the local word-level tokenizer (random weights, no hub access needed); the preset's own
# tokenizer changes only the prompt's token ids
TOKENIZER_OVERRIDE = "model.overrides.backbone.tokenizer=null"


def random_model(preset: str, device, dtype) -> DipoleVLA:
    torch.manual_seed(0)
    model = DipoleVLA(build_config(preset))
    model.set_normalization_stats(compute_normalization_stats(make_target_poses(np.random.default_rng(0), 16)))
    return model.apply_dtype(dtype).to(device)


def random_batch(model: DipoleVLA, scenes: int, device, candidates: int = 0) -> dict:
    proc, config = model.config.processor_settings, model.config
    batch = {
        "pixel_values": torch.randn(scenes, len(proc.cameras), 3, *proc.image_size, device=device),
        "input_ids": torch.randint(0, model.backbone.vocab_size, (scenes, proc.max_prompt_tokens), device=device),
        "attention_mask": torch.ones(scenes, proc.max_prompt_tokens, dtype=torch.long, device=device),
        "proprio": torch.zeros(scenes, config.proprio_dim, device=device),
    }
    poses = make_target_poses(np.random.default_rng(1), scenes * max(candidates, 1))
    shape = (scenes, candidates, 8, 3) if candidates else (scenes, 8, 3)
    batch["target_poses"] = torch.from_numpy(poses.reshape(shape)).to(device)
    return batch


def planning_latency(model: DipoleVLA, device, steps: int, repeats: int, throughput_scenes: int) -> dict:
    """Batch-1 latency, split into the backbone (``encode``) and the head's denoising loop (context passed in),
    and the per-scene cost of a ``throughput_scenes`` batch (launch overhead shared)."""
    model.eval()
    batch = random_batch(model, 1, device)
    il = timed(lambda: model.sample(batch, num_steps=steps, mode="base"), repeats, str(device))
    guided = timed(lambda: model.sample(batch, num_steps=steps, omega=0.5), repeats, str(device))
    with torch.no_grad():
        context = model.encode(batch)
        encode = timed(lambda: model.encode(batch), repeats, str(device))
        il_head = timed(lambda: model.sample(batch, num_steps=steps, mode="base", context=context), repeats,
                        str(device))
        guided_head = timed(lambda: model.sample(batch, num_steps=steps, omega=0.5, context=context), repeats,
                            str(device))
    big = random_batch(model, throughput_scenes, device)
    guided_batched = timed(lambda: model.sample(big, num_steps=steps, omega=0.5), max(repeats // 4, 3), str(device))
    kernels = {}
    if device.type == "cuda":  # kernel launches per batch-1 plan: what bounds latency when the GPU idles
        from torch.profiler import ProfilerActivity, profile

        for name, kwargs in (("il", {"mode": "base"}), ("guided", {"omega": 0.5})):
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                model.sample(batch, num_steps=steps, **kwargs)
                torch.cuda.synchronize()
            events = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
            kernels[f"{name}_cuda_kernels"] = len(events)
            kernels[f"{name}_cuda_busy_s"] = sum(getattr(e, "device_time", 0) for e in events) / 1e6
    return {**kernels, "il_s_per_scene": il, "guided_s_per_scene": guided, "ratio_guided_over_il": guided / il,
            "meets_latency_target": guided <= LATENCY_TARGET_S, "meets_ratio_target": guided / il <= LATENCY_RATIO_TARGET,
            "encode_s": encode, "il_head_loop_s": il_head, "guided_head_loop_s": guided_head,
            "guided_head_step_s": guided_head / steps,
            f"guided_s_per_scene_batch{throughput_scenes}": guided_batched / throughput_scenes}


def training_steps(model: DipoleVLA, device, scenes: int, candidates: int, steps: int, peak_tflops: float) -> dict:
    out = {}
    model.train()
    for name, scope, k in (("il", "base", 0), ("dipole", "adapters", candidates)):
        model.set_trainable(scope)
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-5)
        batch = random_batch(model, scenes, device, k)
        g = torch.randn(scenes, k, device=device)

        def step():
            loss = model.loss_il(batch) if name == "il" else model.loss_dipole(batch, g, beta=1.0).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        with FlopCounterMode(display=False) as counter:
            step()
        flops = counter.get_total_flops()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = timed(step, steps, str(device))
        trajectories = scenes * max(k, 1)
        out[name] = {"step_s": seconds, "scenes_per_s": scenes / seconds, "trajectories_per_s": trajectories / seconds,
                     "tflop_per_step": flops / 1e12, "mfu": flops / seconds / (peak_tflops * 1e12),
                     "peak_memory_gb": (torch.cuda.max_memory_allocated(device) / 2**30
                                        if device.type == "cuda" else None)}
        del optimizer
    out["ratio_dipole_over_il_step"] = out["dipole"]["step_s"] / out["il"]["step_s"]
    return out


def run(cmd: list[str], timeout: int) -> tuple[float, str]:
    """Run ``cmd``, echoing each output line with its elapsed seconds (a run cut off still shows where it was)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        print(f"[{time.perf_counter() - start:7.1f}s] {line}", end="", file=sys.stderr, flush=True)
        if time.perf_counter() - start > timeout:
            proc.kill()
            raise TimeoutError(f"{' '.join(cmd[:4])} ... ran past {timeout} s")
    proc.wait()
    output = "".join(lines)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{output[-6000:]}")
    return time.perf_counter() - start, output


def zero2_and_bf16_checkpoint(preset: str, world: Path, work: Path, timeout: int) -> dict:
    out_dir = work / "zero2"
    seconds, stdout = run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(REPO / "configs/accelerate/deepspeed_zero2.yaml"), "--num_processes", "1",
                           "--mixed_precision", "bf16",
                           str(REPO / "launch/finetune.py"), f"data.data_root={world}", f"output_dir={out_dir}",
                           f"model.preset={preset}", TOKENIZER_OVERRIDE, "stages=[il,dipole]", "il.steps=10", "il.batch_size=4",
                           "dipole.rounds=1", "dipole.steps_per_round=5", "dipole.batch_size=2",
                           "dipole.rollout.num_candidates=8", "eval.enabled=false", "tensorboard=false",
                           "progress_bars=false", "log_every=1"], timeout)
    logged = [line for line in stdout.splitlines()
              if line.startswith(("[setup]", "[il]", "[dipole]"))]
    eval_dir = work / "evaluation"
    eval_s, eval_stdout = run([sys.executable, str(REPO / "launch/evaluate.py"), f"checkpoint={out_dir / 'model'}",
                               "dtype=auto", f"data_root={world}", "omegas=0,1", "metrics=v1", "baselines=il",
                               f"output_dir={eval_dir}", "--no-progress"], timeout)
    from navsim_eval.evaluation import read_rows

    rows = read_rows(eval_dir / "results.csv")
    reloaded = DipoleVLA.from_pretrained(out_dir / "model")
    return {"zero2_wall_s": seconds, "zero2_log_lines": logged, "checkpoint_dtype": str(reloaded.dtype),
            "evaluate_wall_s": eval_s, "evaluate_rows": len(rows), "evaluate_failed_rows": sum(bool(r["error"]) for r in rows),
            "evaluate_summary": [line for line in eval_stdout.splitlines() if line.startswith(("#", "|"))][:12]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="florence2-large")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps (DP-VLA: 10)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--scenes", type=int, default=8, help="scenes per training step")
    parser.add_argument("--throughput-scenes", type=int, default=32, help="scenes per batch of the batched planning row")
    parser.add_argument("--candidates", type=int, default=8, help="K candidates per scene in the DIPOLE step")
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200 SXM)")
    parser.add_argument("--skip-launch", action="store_true", help="skip the ZeRO-2 and checkpoint parts (3, 4)")
    parser.add_argument("--launch-only", action="store_true", help="only the ZeRO-2 and checkpoint parts (3, 4)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per launched command")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    figures = {"gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU)",
               "preset": args.preset, "dtype": args.dtype, "torch": torch.__version__}

    def measure(name: str, part) -> None:
        """Run one part; a failure is recorded under its name and the other parts still run."""
        start = time.perf_counter()
        try:
            figures[name] = part()
        except Exception as error:  # noqa: BLE001 - recorded in the output, not swallowed
            figures[name] = {"error": f"{type(error).__name__}: {error}"[-4000:]}
        figures.setdefault("part_wall_s", {})[name] = round(time.perf_counter() - start, 1)
        text = json.dumps(figures, indent=2, default=str)
        print(f"--- after {name}:\n{text}", flush=True)
        if args.out:
            args.out.write_text(text)

    if not args.launch_only:
        model = random_model(args.preset, device, args.dtype)
        measure("planning", lambda: planning_latency(model, device, args.steps, args.repeats,
                                                     args.throughput_scenes))
        measure("training", lambda: training_steps(model, device, args.scenes, args.candidates, args.train_steps,
                                                   args.peak_tflops))
        del model
    if not args.skip_launch:
        from data_pipelines.synthetic.config import build_config as world_config
        from data_pipelines.synthetic.generate import generate_dataset

        with tempfile.TemporaryDirectory() as tmp:
            world = Path(tmp) / "world"
            generate_dataset(world_config("tiny"), world)
            measure("zero2_and_checkpoint",
                    lambda: zero2_and_bf16_checkpoint(args.preset, world, Path(tmp), args.timeout))
    if any("error" in value for value in figures.values() if isinstance(value, dict)):
        raise SystemExit("some parts failed: see their 'error' entries above")

if __name__ == "__main__":
    main()
