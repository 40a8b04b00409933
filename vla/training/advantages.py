"""Goodness signals G from grouped rewards (specs/dipole.md §5.2) and the bounded DIPOLE weights (§2.4, §3).

Every function takes rewards ``r`` (B, K) for K candidates of B scenes and a validity mask (B, K); failed
scores are masked out of every group statistic and get G = 0 (they carry no loss downstream).
"""

from __future__ import annotations

from typing import Optional

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


def compute_advantage(
    kind: str, rewards: torch.Tensor, valid: torch.Tensor, baseline: Optional[torch.Tensor] = None,
    baseline_valid: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(G (B, K), usable mask (B, K)). Groups with fewer than 2 valid entries (G1-G3) are unusable.

    G carries no gradient (specs/dipole.md §3.3).
    """
    rewards = rewards.detach().to(torch.float64)
    valid = valid.to(torch.bool)
    rewards = torch.where(valid, rewards, torch.zeros_like(rewards))
    v = valid.to(rewards.dtype)
    if kind == "G4":
        if baseline is None:
            raise ValueError("advantage G4 needs a per-scene baseline reward (rollout.score_human=true)")
        usable = valid & (baseline_valid.to(torch.bool).reshape(-1, 1) if baseline_valid is not None else True)
        g = baseline_difference(rewards, baseline.to(rewards.dtype))
    else:
        usable = valid & (valid.sum(dim=1, keepdim=True) >= 2)
        if kind == "G1":
            g = group_normalised(rewards, v)
        elif kind == "G2":
            g = group_centred(rewards, v)
        elif kind == "G3":
            g = centred_rank(rewards, valid)
        else:
            raise ValueError(f"unknown advantage {kind!r}; valid: G1, G2, G3, G4")
    g = torch.where(usable, g, torch.zeros_like(g))
    return g.to(torch.float32), usable


def ewr_weights(g: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """exp(beta G) clipped at ``max_weight`` (the exponentially weighted regression baseline, §2.1)."""
    return torch.exp(torch.clamp(beta * g, max=torch.log(torch.tensor(max_weight)).item()))


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
