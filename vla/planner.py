"""A NAVSIM-agent-shaped planner around a `DipoleVLA`: AgentInput -> (8, 3) poses in the rear-axle frame.

The devkit's agent interface (specs/navsim_data.md §8) needs `get_sensor_config()`, `initialize()` and
`compute_trajectory(agent_input)`; an adapter subclassing the devkit's AbstractAgent can delegate to this
class. When several samples are drawn, the first one is returned (single-sample results are reported
separately from any best-of-N; specs/dipole.md §4).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from data_pipelines.types import AgentInput
from vla.errors import VLAInputError
from vla.modeling_dipole import DipoleVLA
from vla.processing_dipole import DipoleProcessor

CURRENT_FRAME_INDEX = 3  # the current frame in NAVSIM's 4-frame history window (specs/navsim_data.md §5)


class DipolePlanner:
    """Plans with guided DIPOLE sampling (or the base IL head with ``mode="base"``)."""

    def __init__(self, model: DipoleVLA, processor: Optional[DipoleProcessor] = None, omega: float = 0.0,
                 num_steps: Optional[int] = None, num_samples: int = 1, mode: str = "guided",
                 seed: Optional[int] = None):
        if isinstance(omega, (list, tuple)):
            raise VLAInputError("omega", "a planner uses one omega; sweep with model.sample(omega=[...])")
        self.model = model
        self.processor = processor if processor is not None else model.processor
        self.omega = float(omega)
        self.num_steps = num_steps
        self.num_samples = num_samples
        self.mode = mode
        self.seed = seed

    def name(self) -> str:
        return f"dipole_vla_{self.mode}_omega{self.omega:g}"

    def sensor_config(self):
        """The configured cameras at the current frame only (DP-VLA: CAM_L0, CAM_F0, CAM_R0), no lidar."""
        from data_pipelines.scene import SensorConfig

        cameras = {name.lower(): [CURRENT_FRAME_INDEX] for name in self.processor.settings.cameras}
        return SensorConfig(**cameras)

    def _generator(self) -> Optional[torch.Generator]:
        if self.seed is None:
            return None
        device = next(self.model.parameters()).device
        return torch.Generator(device=device).manual_seed(self.seed)

    @torch.no_grad()
    def plan(self, agent_inputs: Sequence[AgentInput]) -> np.ndarray:
        """(B, 8, 3) float32 poses (x, y, heading) for a batch of scenes."""
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in self.processor(list(agent_inputs)).items()}
        poses = self.model.sample(batch, omega=self.omega, num_steps=self.num_steps, num_samples=self.num_samples,
                                  generator=self._generator(), mode=self.mode)
        return poses[:, 0].float().cpu().numpy().astype(np.float32)

    def compute_trajectory(self, agent_input: Union[AgentInput, Sequence[AgentInput]]) -> np.ndarray:
        """(8, 3) float32 poses for one scene."""
        if not isinstance(agent_input, AgentInput):
            raise VLAInputError("agent_input", f"expected an AgentInput, got {type(agent_input).__name__}")
        return self.plan([agent_input])[0]
