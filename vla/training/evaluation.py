"""PDM evaluation of a policy on held-out scenes for several omega, and the results table.

One trajectory per scene per omega, sampled with fixed initial noise (same draws for every policy), scored
by the reward function (the PDM scorer); each process evaluates its shard and the sums are all-reduced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch

from vla.training.data import SceneBatcher, chunks
from vla.training.metrics import finalize, merge
from vla.training.rewards import RewardFn
from vla.training.rollout import score_candidates

PERCENT = 100.0  # NAVSIM tables report sub-metrics and PDMS in percent (specs/dipole.md §7.2)


def sample_policy(
    policy, batcher: SceneBatcher, indices: Sequence[int], omegas: Sequence[float], *, mode: str, num_steps: int,
    num_samples: int, batch_size: int, seed: int, progress: Optional[Callable] = None,
) -> np.ndarray:
    """(N, W, S, 8, 3) poses for W omegas; the noise of scene batch j is drawn from ``seed + j`` (global index)."""
    out = []
    groups = list(chunks(indices, batch_size))
    iterator = progress(groups) if progress is not None else groups
    with torch.no_grad():
        for group in iterator:
            batch = batcher.batch(group, with_targets=False)
            context = policy.encode(batch)
            gen = torch.Generator(device=batcher.device).manual_seed(int(seed) + int(group[0]))
            poses = policy.sample(
                batch, omega=list(omegas), num_steps=num_steps, num_samples=num_samples, context=context,
                generator=gen, mode=mode,
            )  # (B, W, S, 8, 3)
            out.append(poses.detach().float().cpu().numpy())
    return np.concatenate(out, axis=0)


def evaluate_policy(
    policy, batcher: SceneBatcher, reward_fn: RewardFn, omegas: Sequence[float], labels: Sequence[str], *,
    mode: str, num_steps: int, num_samples: int, batch_size: int, seed: int, progress=None,
) -> dict[str, dict[str, tuple[float, float]]]:
    """{label: {metric: (sum, count)}} over this process's shard of the eval scenes."""
    indices = batcher.shard(np.arange(len(batcher)))
    stats: dict[str, dict[str, tuple[float, float]]] = {label: {} for label in labels}
    if len(indices) == 0:
        return stats
    poses = sample_policy(
        policy, batcher, indices, omegas, mode=mode, num_steps=num_steps, num_samples=num_samples,
        batch_size=batch_size, seed=seed, progress=progress,
    )
    n, w, s = poses.shape[:3]
    tokens = [batcher.token(i) for i in indices]
    # each (omega, sample) is one candidate of the scene's group; candidates are scored independently
    scored, _, _ = score_candidates(reward_fn, tokens, poses.reshape(n, w * s, 8, 3))
    for j, label in enumerate(labels):
        cols = slice(j * s, (j + 1) * s)
        valid = scored.valid[:, cols]
        entry: dict[str, tuple[float, float]] = {}
        for name, values in scored.sub_metrics.items():
            v = values[:, cols]
            entry[name] = (float(np.nansum(np.where(valid, v, np.nan))), float(valid.sum()))
        entry["failed"] = (float((~valid).sum()), float(valid.size))
        stats[label] = merge(stats[label], entry)
    return stats


def reduce_stats(accelerator, stats: Mapping[str, Mapping[str, tuple[float, float]]]) -> dict[str, dict[str, float]]:
    """All-reduce (sum, count) pairs over processes and return means."""
    out = {}
    for label, entry in stats.items():
        names = list(entry)  # the reward's order (the table's column order)
        if accelerator is not None and accelerator.num_processes > 1:
            obj = accelerator.gather_for_metrics([{label: dict(entry)}], use_gather_object=True)
            merged: dict = {}
            for item in obj:
                merged = merge(merged, item[label])
            entry = merged
            names = list(entry)
        out[label] = finalize({k: entry[k] for k in names})
    return out


def format_table(results: Mapping[str, Mapping[str, float]], columns: Optional[Sequence[str]] = None) -> str:
    """Markdown table, metrics in percent; columns default to the reward's sub-metrics in its order."""
    if columns is None:
        columns = list(dict.fromkeys(k for entry in results.values() for k in entry if k != "failed"))
    header = "| policy | " + " | ".join(columns) + " | scenes failed |"
    sep = "|---|" + "---|" * (len(columns) + 1)
    rows = [header, sep]
    for label, entry in results.items():
        cells = []
        for col in columns:
            value = entry.get(col)
            cells.append("-" if value is None or not np.isfinite(value) else f"{PERCENT * value:.1f}")
        failed = entry.get("failed", float("nan"))
        cells.append("-" if not np.isfinite(failed) else f"{PERCENT * failed:.1f}%")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_results(output_dir: Path, results: Mapping[str, Mapping[str, float]], extra: Optional[dict] = None) -> str:
    table = format_table(results)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.md").write_text(table + "\n")
    payload = {"results": {k: dict(v) for k, v in results.items()}}
    if extra:
        payload.update(extra)
    (output_dir / "results.json").write_text(json.dumps(payload, indent=2, sort_keys=True, default=float))
    return table
