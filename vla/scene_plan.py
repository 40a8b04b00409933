"""Auxiliary scene-plan probe: one learned query cross-attends to the backbone context, without the ego state, and
predicts how the logged plan departs from a kinematic extrapolation of the ego state (constant velocity or constant
turn rate), in the trajectory head's normalised features. Its squared error, added to the imitation loss
(``il.scene_plan_loss_weight``), asks the context tokens the head reads to carry what the ego state cannot
explain; planning never calls it. docs/experiments.md ("The command where the route turns") has its figures."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from data_pipelines.geometry import constant_turn_rate_poses, history_yaw_rate
from data_pipelines.scene import FRAME_INTERVAL_S
from vla.configuration_dipole import ACTION_DIM, NUM_TRAJECTORY_POSES, ProcessorSettings, ScenePlanSettings
from vla.context_queries import ContextQueries

LATERAL_FEATURES = slice(1, ACTION_DIM)  # y, cos h, sin h of the features (x, y, cos h, sin h)


class ScenePlanProbe(ContextQueries):
    """One learned query over the context, then an MLP to the plan's departure (8 poses x 4 features)."""

    def __init__(self, settings: ScenePlanSettings, context_size: int):
        width = settings.hidden_size
        super().__init__(1, context_size, width, settings.num_heads)
        self.out = nn.Sequential(nn.Linear(width, width), nn.GELU(),
                                 nn.Linear(width, NUM_TRAJECTORY_POSES * ACTION_DIM))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Context (B, T, D) + valid mask (B, T) -> predicted departure (B, 8, 4) in normalised features."""
        return self.out(self.read_context(tokens, mask)[:, 0]).reshape(-1, NUM_TRAJECTORY_POSES, ACTION_DIM)


def kinematic_baseline_poses(proprio: torch.Tensor, processor: ProcessorSettings, baseline: str) -> torch.Tensor:
    """Raw proprio (B, P) -> poses (B, 8, 3) of the ego state extrapolated: the current speed straight ahead
    (``constant_velocity``, NAVSIM's baseline) or along the arc of the last history interval's yaw rate
    (``constant_turn_rate``), as the benchmark's model-free planners drive."""
    raw = proprio.detach().double().cpu().numpy()
    speed = np.linalg.norm(raw[:, processor.velocity_columns], axis=1)
    yaw_rate = np.zeros_like(speed)
    if baseline == "constant_turn_rate":
        now, before = processor.history_heading_columns[-1], processor.history_heading_columns[-2]
        yaw_rate = history_yaw_rate(raw[:, now], raw[:, before], processor.history_interval_s)
    times = FRAME_INTERVAL_S * np.arange(1, NUM_TRAJECTORY_POSES + 1)
    poses = constant_turn_rate_poses(speed, yaw_rate, times)
    return torch.as_tensor(poses, dtype=torch.float32, device=proprio.device)


def scene_plan_loss(predicted: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor, features: str) -> torch.Tensor:
    """Mean squared error of the predicted departure (B, 8, 4) from ``target - baseline`` (normalised features,
    (B, 8, 4) each), over every feature (``all``) or over y, cos h and sin h (``lateral``)."""
    error = (predicted - (target - baseline)) ** 2
    return (error[..., LATERAL_FEATURES] if features == "lateral" else error).mean()
