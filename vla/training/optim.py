"""Optimizer and learning-rate schedule (linear warmup, then cosine decay or constant)."""

from __future__ import annotations

import math
from typing import Iterable

import torch

from vla.training.config import OptimSection


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimSection) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters for this stage")
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimSection, total_steps: int):
    """LambdaLR stepped once per optimizer step by the trainer (not by accelerate or DeepSpeed)."""
    warmup = max(0, int(cfg.warmup_steps))
    total = max(1, int(total_steps))
    floor = float(cfg.min_lr_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
