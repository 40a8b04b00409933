"""Round statistics that make reward hacking and collapse visible (specs/dipole.md §8 logging list).

Each statistic is accumulated as a (sum, count) pair so that processes can add theirs with one all-reduce.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np
import torch

from data_pipelines.geometry import wrap_angle
from vla.guidance import dichotomous_weights, ewr_weights

BACKWARD_STEP_TOL_M = 0.1  # an along-track step below -0.1 m counts as driving backwards (§8 EP hacking check)
HEADING_FLIP_RAD = np.pi / 2  # a heading change above 90 deg between 0.5 s poses counts as a flip


def kinematic_flags(poses: np.ndarray) -> dict[str, np.ndarray]:
    """Per candidate (…, 8, 3): backward along-track step or heading flip in the final segment, anywhere."""
    poses = np.asarray(poses, dtype=np.float64)
    prev = np.concatenate([np.zeros_like(poses[..., :1, :]), poses[..., :-1, :]], axis=-2)  # start at origin
    step = poses[..., :2] - prev[..., :2]
    heading = prev[..., 2]
    along = step[..., 0] * np.cos(heading) + step[..., 1] * np.sin(heading)
    dh = np.abs(wrap_angle(poses[..., 2] - prev[..., 2]))
    backward = along < -BACKWARD_STEP_TOL_M
    flip = dh > HEADING_FLIP_RAD
    return {
        "final_backward": backward[..., -1],
        "final_heading_flip": flip[..., -1],
        "any_backward": backward.any(axis=-1),
    }


def _add(stats: dict, name: str, values: np.ndarray, mask: Optional[np.ndarray] = None) -> None:
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values) if mask is None else (np.asarray(mask, bool) & np.isfinite(values))
    s, c = stats.get(name, (0.0, 0.0))
    stats[name] = (s + float(values[ok].sum()), c + float(ok.sum()))


def rollout_statistics(
    rewards: np.ndarray,
    valid: np.ndarray,
    sub_metrics: Mapping[str, np.ndarray],
    poses: np.ndarray,
    advantages: Optional[np.ndarray] = None,
    usable: Optional[np.ndarray] = None,
    beta: Optional[float] = None,
    weight_offset: float = 0.0,
    reference_poses: Optional[np.ndarray] = None,
    ewr_max_weight: Optional[float] = None,
) -> dict[str, tuple[float, float]]:
    """(sum, count) per statistic for one process's rollouts of one round."""
    from vla.training.advantages import zero_variance_fraction  # local: keeps numpy-only import path light

    import torch

    stats: dict[str, tuple[float, float]] = {}
    for name, values in sub_metrics.items():
        _add(stats, f"rollout/{name}", values, valid)
    for name, values in sub_metrics.items():  # multiplier sub-metrics gate the score at 0 (and NC at 0.5)
        _add(stats, f"rollout/frac_{name}_eq_0", np.asarray(values) == 0.0, valid)
        _add(stats, f"rollout/frac_{name}_eq_half", np.asarray(values) == 0.5, valid)
    groups = valid.any(axis=1)
    r = np.where(valid, rewards, np.nan)
    if groups.any():
        with np.errstate(all="ignore"):
            _add(stats, "rollout/group_max_reward", np.nanmax(r[groups], axis=1))
            _add(stats, "rollout/group_min_reward", np.nanmin(r[groups], axis=1))
            _add(stats, "rollout/group_mean_reward", np.nanmean(r[groups], axis=1))
    n_groups = float((valid.sum(axis=1) >= 2).sum())
    zvf = zero_variance_fraction(torch.from_numpy(np.nan_to_num(rewards)), torch.from_numpy(valid))
    stats["rollout/zero_variance_group_frac"] = (zvf * n_groups, n_groups)
    stats["rollout/masked_frac"] = (float((~valid).sum()), float(valid.size))
    for name, flag in kinematic_flags(poses).items():
        _add(stats, f"rollout/frac_{name}", flag, valid)
    if advantages is not None and beta is not None:
        if ewr_max_weight is None:
            w = dichotomous_weights(torch.as_tensor(advantages, dtype=torch.float64), beta, weight_offset)[0].numpy()
            _add(stats, "rollout/mean_sigmoid_beta_G", w, usable)
        else:
            g = torch.as_tensor(advantages, dtype=torch.float64)
            _add(stats, "rollout/mean_ewr_weight", ewr_weights(g, beta, ewr_max_weight).numpy(), usable)
            _add(stats, "rollout/frac_ewr_weight_clipped", (beta * g >= math.log(ewr_max_weight)).numpy(), usable)
        _add(stats, "rollout/mean_abs_G", np.abs(advantages), usable)
    if reference_poses is not None:
        diff = np.linalg.norm(np.asarray(poses)[..., :2] - np.asarray(reference_poses)[..., :2], axis=-1).mean(-1)
        _add(stats, "drift/l2_to_mu0_m", diff)
    return stats


def finalize(stats: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    return {k: (s / c if c > 0 else float("nan")) for k, (s, c) in stats.items()}


def merge(a: Mapping[str, tuple[float, float]], b: Mapping[str, tuple[float, float]]) -> dict:
    out = dict(a)
    for k, (s, c) in b.items():
        s0, c0 = out.get(k, (0.0, 0.0))
        out[k] = (s0 + s, c0 + c)
    return out


def reduce_stats(accelerator, stats: Mapping[str, Mapping[str, tuple[float, float]]]) -> dict[str, dict[str, float]]:
    """All-reduce {label: {name: (sum, count)}} over processes and return the means."""
    out = {}
    for label, entry in stats.items():
        if accelerator is not None and accelerator.num_processes > 1:
            merged: dict = {}
            for item in accelerator.gather_for_metrics([{label: dict(entry)}], use_gather_object=True):
                merged = merge(merged, item[label])
            entry = merged
        out[label] = finalize({k: entry[k] for k in entry})  # the reward's order
    return out
