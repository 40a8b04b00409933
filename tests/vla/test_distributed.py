"""Two-process DDP (gloo, CPU) training steps for every tiny preset: no parameter may go without gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from tests.gloo_processes import run_in_gloo_processes
from vla.presets import TINY_PRESETS
from vla.testing import make_agent_input, make_target_poses, tiny_model

WORLD_SIZE = 2
STEPS = 2  # DDP reports parameters without gradient at the step after the one that left them out
CANDIDATES = 2


class LossModule(torch.nn.Module):
    """Routes a loss through ``forward`` so that DDP's gradient hooks fire (as a trainer does)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, objective: str, batch: dict, **kwargs):
        if objective == "il":
            return self.model.loss_il(batch, **kwargs)
        return self.model.loss_dipole(batch, **kwargs).loss


def _train(rank: int, preset: str) -> None:
    torch.set_num_threads(1)
    model = tiny_model(preset)
    model.train()
    rng = np.random.default_rng(rank)
    inputs = [make_agent_input(rng), make_agent_input(rng)]
    for scope, objective in (("base", "il"), ("adapters", "dipole")):
        model.set_trainable(scope)
        engine = DistributedDataParallel(LossModule(model))  # default: find_unused_parameters=False
        optimizer = torch.optim.SGD(model.trainable_parameters(), lr=1e-3)
        for _ in range(STEPS):
            if objective == "il":
                batch, kwargs = model.processor(inputs, make_target_poses(rng, 2)), {}
            else:
                batch = model.processor(inputs)
                batch["target_poses"] = torch.from_numpy(
                    make_target_poses(rng, 2 * CANDIDATES).reshape(2, CANDIDATES, 8, 3))
                kwargs = {"g": torch.randn(2, CANDIDATES), "beta": 1.0}
            engine(objective, batch, **kwargs).backward()
            missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            assert not missing, f"{scope}: trainable parameters without gradient {missing[:5]}"
            optimizer.step()
            optimizer.zero_grad()


@pytest.mark.slow
@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_two_process_ddp_steps_for_both_trainable_scopes(preset):
    run_in_gloo_processes(_train, (preset,), world_size=WORLD_SIZE)
