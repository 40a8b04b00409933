"""DIPOLE's dichotomous weights (training) and guided combination (inference), specs/dipole.md §3-4.

Convention: the project stores omega (greediness). A classifier-free-guidance scale means cfg = 1 + omega,
i.e. output = neg + cfg * (pos - neg) (specs/dipole.md §4).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from vla.errors import VLAInputError

POSITIVE = "positive"
NEGATIVE = "negative"


def omega_to_cfg(omega: float) -> float:
    """cfg scale (CFGRL / dipole-rl convention) of a greediness omega."""
    return 1.0 + omega


def cfg_to_omega(cfg: float) -> float:
    """Greediness omega of a cfg scale."""
    return cfg - 1.0


def branches_for_omega(omega: float) -> tuple[str, ...]:
    """Branches whose predictions the combination needs: omega = 0 -> pi+ only, omega = -1 -> pi- only."""
    if omega == 0.0:
        return (POSITIVE,)
    if omega == -1.0:
        return (NEGATIVE,)
    return (POSITIVE, NEGATIVE)


def guided_combination(positive: torch.Tensor, negative: Union[torch.Tensor, None], omega: float) -> torch.Tensor:
    """(1 + omega) * positive - omega * negative; exact pi+ at omega = 0 and pi- at omega = -1.

    Works for eps-, velocity- and x0-predictions alike (the weights sum to 1).
    """
    if omega == 0.0:
        return positive
    if omega == -1.0:
        if negative is None:
            raise VLAInputError("negative", "omega = -1 needs the negative branch prediction")
        return negative
    if negative is None or positive is None:
        raise VLAInputError("negative", f"omega = {omega} needs both branch predictions")
    return (1.0 + omega) * positive - omega * negative


def dichotomous_weights(g: torch.Tensor, beta: float, offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """w+ = sigmoid(beta g + offset), w- = 1 - w+ (computed as sigmoid(-(...)), NaN-free for g = +-inf).

    g carries no gradient (specs/dipole.md §3 rule 3); NaN in g is an input error.
    """
    if beta <= 0:
        raise VLAInputError("beta", f"temperature must be positive, got {beta}")
    g = g.detach()
    if torch.isnan(g).any():
        raise VLAInputError("g", "goodness signal contains NaN (mask failed scores instead)")
    z = beta * g + offset
    return torch.sigmoid(z), torch.sigmoid(-z)


def ewr_weights(g: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """exp(beta g) clipped at ``max_weight`` (the exponentially weighted regression baseline, specs/dipole.md §2.1)."""
    return torch.exp(torch.clamp(beta * g, max=math.log(max_weight)))


def as_omega_list(omega: Union[float, Sequence[float]]) -> tuple[list[float], bool]:
    """Normalise a scalar or a sweep of omegas; returns (list, was_sequence)."""
    if isinstance(omega, (list, tuple)):
        if len(omega) == 0:
            raise VLAInputError("omega", "empty omega sweep")
        return [float(o) for o in omega], True
    return [float(omega)], False


def weighted_mean(per_sample: torch.Tensor, weights: Optional[torch.Tensor] = None,
                  mask: Optional[torch.Tensor] = None, normalize: bool = False) -> torch.Tensor:
    """sum(w m l) / sum(m) (plain mean over kept samples), or / sum(w m) with ``normalize``."""
    w = torch.ones_like(per_sample) if weights is None else weights.to(per_sample.dtype)
    m = torch.ones_like(per_sample) if mask is None else mask.to(per_sample.dtype)
    denominator = (w * m).sum() if normalize else m.sum()
    return (w * m * per_sample).sum() / denominator.clamp_min(torch.finfo(per_sample.dtype).tiny)


def dipole_branch_losses(err_positive: torch.Tensor, err_negative: torch.Tensor, g: torch.Tensor, beta: float,
                         offset: float = 0.0, mask: Optional[torch.Tensor] = None,
                         normalize: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DIPOLE's two regression losses from per-sample errors of each branch on the SAME (a, eps, t).

    L+ = mean(sigmoid(beta g) * err+), L- = mean((1 - sigmoid(beta g)) * err-) (specs/dipole.md §3).
    Returns (L+, L-, w+).
    """
    w_pos, w_neg = dichotomous_weights(g, beta, offset)
    return (weighted_mean(err_positive, w_pos, mask, normalize), weighted_mean(err_negative, w_neg, mask, normalize),
            w_pos)
