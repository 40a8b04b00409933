"""Model benchmark: planning latency (IL vs guided two-branch sampling), training-step cost (IL vs DIPOLE),
parameter counts and peak memory.

    python benchmarks/bench_model.py                    # tiny presets on CPU + real presets' sizes
    python benchmarks/bench_model.py --real-head        # also time the paper-size DiT head on a random context
    python benchmarks/bench_model.py --device cuda      # on a GPU

Each tiny preset is measured in its own subprocess so that its peak resident memory is its own. Targets:
guided / IL planning latency <= 1.3 with the same number of steps, and DIPOLE step / IL step <= 1.3.
Real presets' parameter counts come from their configs on the meta device (no download).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vla.testing import make_agent_input, make_target_poses, perturb, tiny_model  # noqa: E402
from vla import Context, DipoleVLA  # noqa: E402
from vla.presets import REAL_PRESETS, TINY_PRESETS, build_config  # noqa: E402

TARGET_RATIO = 1.3


def timed(fn, repeats: int, device: str) -> float:
    """Median seconds of `fn()` over `repeats` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def count_parameters(model: DipoleVLA) -> dict:
    head = sum(p.numel() for n, p in model.head.named_parameters() if "lora_" not in n)
    lora = sum(p.numel() for n, p in model.head.named_parameters() if "lora_" in n)
    backbone = sum(p.numel() for p in model.backbone.parameters())
    return {"backbone": backbone, "head": head, "lora_both": lora, "total": backbone + head + lora}


def measure_preset(preset: str, device: str, steps: int, scenes: int, candidates: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = tiny_model(preset).to(device)
    perturb(model.head, seed=1)
    rng = np.random.default_rng(0)
    inputs = [make_agent_input(rng) for _ in range(scenes)]
    batch = {k: v.to(device) for k, v in model.processor(inputs, make_target_poses(rng, scenes)).items()}
    poses_k = torch.from_numpy(make_target_poses(rng, scenes * candidates).reshape(scenes, candidates, 8, 3))
    dipole_batch = {**batch, "target_poses": poses_k.to(device)}
    g = torch.randn(scenes, candidates, device=device)

    def plan(**kwargs):
        return lambda: model.sample(batch, num_steps=steps, **kwargs)

    out = {"preset": preset, "params": count_parameters(model)}
    model.eval()
    il = timed(plan(mode="base"), repeats, device)
    guided = timed(plan(omega=0.5), repeats, device)
    pi_plus = timed(plan(omega=0.0), repeats, device)
    with torch.no_grad():
        ctx = model.encode(batch)
    il_head = timed(lambda: model.sample(batch, num_steps=steps, mode="base", context=ctx), repeats, device)
    guided_head = timed(lambda: model.sample(batch, num_steps=steps, omega=0.5, context=ctx), repeats, device)
    out["planning_s_per_scene"] = {"il": il / scenes, "guided": guided / scenes, "omega0": pi_plus / scenes,
                                   "ratio_guided_over_il": guided / il,
                                   "head_only_ratio_guided_over_il": guided_head / il_head}

    model.train()

    def il_step():
        model.zero_grad(set_to_none=True)
        model.loss_il(batch).backward()

    def il_step_same_candidates():
        model.zero_grad(set_to_none=True)
        model.loss_il(dipole_batch).backward()

    def dipole_step():
        model.zero_grad(set_to_none=True)
        model.loss_dipole(dipole_batch, g, beta=1.0).loss.backward()

    il_step_s = timed(il_step, repeats, device)
    il_k_step_s = timed(il_step_same_candidates, repeats, device)
    dipole_step_s = timed(dipole_step, repeats, device)
    out["train_step_s"] = {"il": il_step_s, f"il_k{candidates}": il_k_step_s, f"dipole_k{candidates}": dipole_step_s,
                           "ratio_dipole_over_il": dipole_step_s / il_step_s,
                           "ratio_dipole_over_il_same_candidates": dipole_step_s / il_k_step_s}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def real_preset_sizes() -> list[dict]:
    rows = []
    for name in REAL_PRESETS:
        with torch.device("meta"):
            model = DipoleVLA(build_config(name))
        rows.append({"preset": name, "params": count_parameters(model),
                     "weights_gb_bf16": count_parameters(model)["total"] * 2 / 1e9})
    return rows


def real_head_latency(device: str, steps: int, repeats: int, context_tokens: int) -> dict:
    """Paper-size DiT head (hidden 1024, depth 12) on a random Florence-2-large-sized context."""
    config = build_config("florence2-large")
    with torch.device("meta"):
        model = DipoleVLA(config)
    head = model.head.to_empty(device=device)
    with torch.no_grad():
        for param in head.parameters():
            param.normal_(0.0, 0.02)
    model.head = head.eval()
    model.set_normalization_stats(
        __import__("vla").compute_normalization_stats(make_target_poses(np.random.default_rng(0), 16)))
    context = Context(torch.randn(1, context_tokens, 1024, device=device),
                      torch.ones(1, context_tokens, dtype=torch.bool, device=device))
    batch = {"proprio": torch.zeros(1, config.proprio_dim, device=device)}
    il = timed(lambda: model.sample(batch, num_steps=steps, mode="base", context=context), repeats, device)
    guided = timed(lambda: model.sample(batch, num_steps=steps, omega=0.5, context=context), repeats, device)
    return {"context_tokens": context_tokens, "il_s": il, "guided_s": guided, "ratio_guided_over_il": guided / il}


def real_full_latency(preset: str, device: str, steps: int, repeats: int) -> dict:
    """A real preset with random weights (no download): one scene with random pixels and prompt ids."""
    torch.manual_seed(0)
    config = build_config(preset)
    model = DipoleVLA(config).to(device).eval()
    model.set_normalization_stats(
        __import__("vla").compute_normalization_stats(make_target_poses(np.random.default_rng(0), 16)))
    proc = config.processor_settings
    batch = {
        "pixel_values": torch.randn(1, len(proc.cameras), 3, *proc.image_size, device=device),
        "input_ids": torch.randint(0, model.backbone.vocab_size, (1, proc.max_prompt_tokens), device=device),
        "attention_mask": torch.ones(1, proc.max_prompt_tokens, dtype=torch.long, device=device),
        "proprio": torch.zeros(1, config.proprio_dim, device=device),
    }
    with torch.no_grad():
        encode = timed(lambda: model.encode(batch), repeats, device)
        tokens = model.encode(batch).tokens.shape[1]
    il = timed(lambda: model.sample(batch, num_steps=steps, mode="base"), repeats, device)
    guided = timed(lambda: model.sample(batch, num_steps=steps, omega=0.5), repeats, device)
    return {"preset": preset, "context_tokens": tokens, "encode_s": encode, "il_s": il, "guided_s": guided,
            "ratio_guided_over_il": guided / il}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="denoising steps (DP-VLA: 10)")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=8, help="K candidates per scene in the DIPOLE step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--presets", nargs="*", default=list(TINY_PRESETS))
    parser.add_argument("--real-head", action="store_true", help="also time the paper-size head (needs ~2 GB)")
    parser.add_argument("--context-tokens", type=int, default=475, help="3 x 145 Florence-2 image tokens + 40")
    parser.add_argument("--real-full", metavar="PRESET", help="also time a whole real preset with random weights "
                        "(e.g. florence2-large; ~5 GB of memory, slow on CPU)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="write all results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.child:
        print(json.dumps(measure_preset(args.child, args.device, args.steps, args.scenes, args.candidates,
                                        args.repeats)))
        return

    results = {"tiny": [], "real_sizes": real_preset_sizes()}
    for preset in args.presets:
        cmd = [sys.executable, __file__, "--child", preset, "--device", args.device, "--steps", str(args.steps),
               "--scenes", str(args.scenes), "--candidates", str(args.candidates), "--repeats", str(args.repeats),
               "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results["tiny"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.real_full:
        results["real_full"] = real_full_latency(args.real_full, args.device, args.steps, max(2, args.repeats // 2))
    if args.real_head:
        results["real_head"] = real_head_latency(args.device, args.steps, max(2, args.repeats // 2),
                                                 args.context_tokens)

    print(f"device {args.device}, {args.threads} thread(s), {args.steps} steps, {args.scenes} scenes, "
          f"K = {args.candidates}; target ratios <= {TARGET_RATIO}")
    k = args.candidates
    print("planning (per scene; 'head' = context given) and training steps (B scenes; IL on 1 target or on the "
          f"same K = {k} candidates as DIPOLE):")
    print(f"{'preset':16s} {'params':>8s} {'IL ms':>7s} {'guided':>7s} {'ratio':>6s} {'head':>5s} | "
          f"{'IL':>6s} {'IL-K':>6s} {'DIPOLE':>7s} {'/IL':>5s} {'/IL-K':>6s} | {'peak MB':>7s}")
    for row in results["tiny"]:
        p, t = row["planning_s_per_scene"], row["train_step_s"]
        print(f"{row['preset']:16s} {row['params']['total'] / 1e6:7.2f}M {p['il'] * 1e3:7.1f} {p['guided'] * 1e3:7.1f} "
              f"{p['ratio_guided_over_il']:6.2f} {p['head_only_ratio_guided_over_il']:5.2f} | {t['il'] * 1e3:6.1f} "
              f"{t[f'il_k{k}'] * 1e3:6.1f} {t[f'dipole_k{k}'] * 1e3:7.1f} {t['ratio_dipole_over_il']:5.2f} "
              f"{t['ratio_dipole_over_il_same_candidates']:6.2f} | {row['peak_rss_mb']:7.0f}")
    print("real presets (from configs, meta device):")
    for row in results["real_sizes"]:
        c = row["params"]
        print(f"  {row['preset']:22s} total {c['total'] / 1e9:.3f}B = backbone {c['backbone'] / 1e6:.1f}M + "
              f"DiT head {c['head'] / 1e6:.1f}M + LoRA (both) {c['lora_both'] / 1e6:.1f}M; "
              f"{row['weights_gb_bf16']:.2f} GB in bf16")
    if "real_head" in results:
        r = results["real_head"]
        print(f"paper-size head, {r['context_tokens']} context tokens: IL {r['il_s'] * 1e3:.0f} ms, guided "
              f"{r['guided_s'] * 1e3:.0f} ms, ratio {r['ratio_guided_over_il']:.2f}")
    if "real_full" in results:
        r = results["real_full"]
        print(f"{r['preset']} (random weights), 1 scene, {r['context_tokens']} context tokens: encode "
              f"{r['encode_s'] * 1e3:.0f} ms; planning IL {r['il_s'] * 1e3:.0f} ms, "
              f"guided {r['guided_s'] * 1e3:.0f} ms, "
              f"ratio {r['ratio_guided_over_il']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
