"""Goodness signals G from grouped rewards (specs/dipole.md §5.2) and the bounded DIPOLE weights (§2.4, §3).

Every function takes rewards ``r`` (B, K) for K candidates of B scenes and a validity mask (B, K); failed
scores are masked out of every group statistic and get G = 0 (they carry no loss downstream).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

G1_STD_EPS = 1e-6  # (r - mean) / (std + 1e-6), specs/dipole.md §5.2 table, row G1
ZERO_VARIANCE_TOL = 1e-9  # a group whose valid rewards differ by less than this carries no signal


def _masked_mean(r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)
    return (r * valid).sum(dim=1, keepdim=True) / count


def _masked_std(r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Population std over the valid entries of each group (GRPO convention)."""
    mean = _masked_mean(r, valid)
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)
    var = (((r - mean) * valid) ** 2).sum(dim=1, keepdim=True) / count
    return var.sqrt()


def group_normalised(r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """G1: (r_i - mean_K r) / (std_K r + 1e-6); a constant group gives 0."""
    return (r - _masked_mean(r, valid)) / (_masked_std(r, valid) + G1_STD_EPS)


def group_centred(r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """G2: r_i - mean_K r (keeps absolute reward gaps; needs a large beta)."""
    return r - _masked_mean(r, valid)


def centred_rank(r: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """G3: the rank of r_i among the valid entries of its group, mapped to [-1, 1]; ties share their mean rank."""
    out = torch.zeros_like(r)
    for b in range(r.shape[0]):
        idx = torch.nonzero(valid[b], as_tuple=False).flatten()
        n = idx.numel()
        if n < 2:
            continue
        values = r[b, idx]
        # average rank with ties: count of smaller entries + (count of equal entries - 1) / 2
        less = (values.unsqueeze(0) < values.unsqueeze(1)).sum(dim=1).to(r.dtype)
        equal = (values.unsqueeze(0) == values.unsqueeze(1)).sum(dim=1).to(r.dtype)
        rank = less + (equal - 1) / 2
        out[b, idx] = 2.0 * rank / (n - 1) - 1.0
    return out


def baseline_difference(r: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """G4: r_i - r(s, a_baseline) with a per-scene baseline (e.g. the human log trajectory's score)."""
    return r - baseline.reshape(-1, 1)


@dataclass(frozen=True)
class Advantage:
    """A goodness signal: ``fn(r, valid, baseline)`` -> G (B, K); ``needs_baseline``: a per-scene baseline reward
    (e.g. the logged trajectory's score) defines usability instead of the group size."""

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
    needs_baseline: bool = False


ADVANTAGES: dict[str, Advantage] = {}
ALIASES = {"G1": "group_normalized", "G2": "group_centered", "G3": "rank", "G4": "human_baseline"}
"""The spec's names (specs/dipole.md §5.2 table rows) for the registered advantages."""


def register_advantage(name: str, needs_baseline: bool = False):
    """Decorator adding ``fn(r, valid, baseline) -> G`` to the registry under ``name``."""
    def add(fn):
        ADVANTAGES[name] = Advantage(name, fn, needs_baseline)
        return fn
    return add


register_advantage("group_normalized")(lambda r, valid, baseline: group_normalised(r, valid.to(r.dtype)))
register_advantage("group_centered")(lambda r, valid, baseline: group_centred(r, valid.to(r.dtype)))
register_advantage("rank")(lambda r, valid, baseline: centred_rank(r, valid))
register_advantage("human_baseline", needs_baseline=True)(lambda r, valid, baseline: baseline_difference(r, baseline))


def advantage_names() -> list[str]:
    """Registered names followed by their aliases (what a config may name)."""
    return list(ADVANTAGES) + [a for a, target in ALIASES.items() if target in ADVANTAGES]


def get_advantage(kind: str) -> Advantage:
    entry = ADVANTAGES.get(ALIASES.get(kind, kind))
    if entry is None:
        raise ValueError(f"unknown advantage {kind!r}; valid: {', '.join(advantage_names())}")
    return entry


def compute_advantage(
    kind: str, rewards: torch.Tensor, valid: torch.Tensor, baseline: Optional[torch.Tensor] = None,
    baseline_valid: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(G (B, K), usable mask (B, K)). Groups with fewer than 2 valid entries are unusable (group advantages);
    with a baseline advantage, scenes whose baseline failed are.

    ``kind`` is a registered name or an alias (G1..G4). G carries no gradient (specs/dipole.md §3.3).
    """
    advantage = get_advantage(kind)
    rewards = rewards.detach().to(torch.float64)
    valid = valid.to(torch.bool)
    rewards = torch.where(valid, rewards, torch.zeros_like(rewards))
    if advantage.needs_baseline:
        if baseline is None:
            raise ValueError(f"advantage {kind} needs a per-scene baseline reward (rollout.score_human=true)")
        usable = valid & (baseline_valid.to(torch.bool).reshape(-1, 1) if baseline_valid is not None else True)
        baseline = baseline.to(rewards.dtype)
    else:
        usable = valid & (valid.sum(dim=1, keepdim=True) >= 2)
    g = advantage.fn(rewards, valid, baseline)
    g = torch.where(usable, g, torch.zeros_like(g))
    return g.to(torch.float32), usable


def zero_variance_fraction(rewards: torch.Tensor, valid: torch.Tensor) -> float:
    """Fraction of groups (with >= 2 valid entries) whose valid rewards are all equal."""
    valid = valid.to(torch.bool)
    big = torch.finfo(torch.float64).max
    r = rewards.to(torch.float64)
    hi = torch.where(valid, r, torch.full_like(r, -big)).max(dim=1).values
    lo = torch.where(valid, r, torch.full_like(r, big)).min(dim=1).values
    groups = valid.sum(dim=1) >= 2
    if not bool(groups.any()):
        return 0.0
    flat = (hi - lo).abs() <= ZERO_VARIANCE_TOL
    return float((flat & groups).sum()) / float(groups.sum())
