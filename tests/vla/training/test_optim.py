import pytest
import torch

from vla.training.config import OptimSection
from vla.training.optim import build_optimizer, build_scheduler


def test_backbone_parameters_learn_at_the_scaled_rate():
    head, backbone = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    cfg = OptimSection(lr=1e-3, backbone_lr_scale=0.1)
    optimizer = build_optimizer(list(head.parameters()) + list(backbone.parameters()), cfg, backbone.parameters())
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert all(rates[id(p)] == pytest.approx(1e-3) for p in head.parameters())
    assert all(rates[id(p)] == pytest.approx(1e-4) for p in backbone.parameters())
    # the schedule scales every group by the same factor
    scheduler = build_scheduler(optimizer, cfg, total_steps=100)
    for _ in range(cfg.warmup_steps + 50):
        optimizer.step()
        scheduler.step()
    head_lr, backbone_lr = (group["lr"] for group in optimizer.param_groups)
    assert backbone_lr == pytest.approx(0.1 * head_lr)


def test_frozen_parameters_are_left_out():
    head, backbone = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    backbone.requires_grad_(False)
    optimizer = build_optimizer(list(head.parameters()) + list(backbone.parameters()), OptimSection(), backbone.parameters())
    assert len(optimizer.param_groups) == 1
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 2
