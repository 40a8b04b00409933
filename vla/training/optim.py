"""Optimizer and learning-rate schedule (linear warmup, then cosine decay or constant)."""

from __future__ import annotations

import math
from typing import Iterable

import torch

from vla.training.config import OptimSection


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimSection,
                    backbone_params: Iterable[torch.nn.Parameter] = ()) -> torch.optim.Optimizer:
    """AdamW over the trainable ``params``; those also in ``backbone_params`` learn at ``lr * backbone_lr_scale``."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters for this stage")
    backbone = {id(p) for p in backbone_params}
    groups = [{"params": [p for p in params if id(p) not in backbone], "lr": cfg.lr},
              {"params": [p for p in params if id(p) in backbone], "lr": cfg.lr * cfg.backbone_lr_scale}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


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
