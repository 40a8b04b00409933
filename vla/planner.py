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
from vla.sampling import prepare_inputs, sample_scenes

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

    @torch.no_grad()
    def plan(self, agent_inputs: Sequence[AgentInput], tokens: Optional[Sequence[str]] = None) -> np.ndarray:
        """(B, 8, 3) float32 poses (x, y, heading) for a batch of scenes.

        With a ``seed``, each scene's noise comes from (seed, token) (``vla.sampling``); without ``tokens`` a
        scene is keyed by its position in the call. Without a seed the noise is fresh on every call.
        """
        agent_inputs = list(agent_inputs)
        if tokens is None:
            tokens = [str(i) for i in range(len(agent_inputs))]
        if len(tokens) != len(agent_inputs):
            raise VLAInputError("tokens", f"{len(tokens)} tokens for {len(agent_inputs)} scenes")
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, ()).item())
        batch = prepare_inputs(self.model, agent_inputs, self.processor)
        poses = sample_scenes(self.model, batch, tokens, seed=seed, omega=self.omega, mode=self.mode,
                              num_samples=self.num_samples, num_steps=self.num_steps)
        return poses[:, 0]

    def compute_trajectory(self, agent_input: Union[AgentInput, Sequence[AgentInput]]) -> np.ndarray:
        """(8, 3) float32 poses for one scene."""
        if not isinstance(agent_input, AgentInput):
            raise VLAInputError("agent_input", f"expected an AgentInput, got {type(agent_input).__name__}")
        return self.plan([agent_input])[0]
