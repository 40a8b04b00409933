"""The official NAVSIM devkit's agent interface around a DipoleVLA checkpoint (inference only).

Importable only where the devkit (``navsim``, ``nuplan-devkit``) is installed; nothing else in the project imports
this module. The devkit's scripts (``run_pdm_score.py``, ``run_create_submission_pickle.py``) instantiate the agent
from ``configs/navsim_devkit/agent/dipole_vla_agent.yaml`` (see docs/navsim_devkit.md), call ``initialize()`` once
per worker, read ``get_sensor_config()`` for the scene loader and call ``compute_trajectory(agent_input)`` with the
devkit's own ``AgentInput``. The devkit interface facts (navsim@main ``navsim/agents/abstract_agent.py``,
``navsim/common/dataclasses.py``): ``AbstractAgent(trajectory_sampling, requires_scene=False)``; ``Trajectory(poses,
trajectory_sampling)`` with (num_poses, 3) poses in the current rear-axle frame; ``SensorConfig`` with one field per
camera and ``lidar_pc``, each a bool or a list of history indices.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

try:
    from navsim.agents.abstract_agent import AbstractAgent
    from navsim.common.dataclasses import SensorConfig as DevkitSensorConfig
    from navsim.common.dataclasses import Trajectory as DevkitTrajectory
except ImportError as err:  # pragma: no cover - exercised only without the devkit
    raise ImportError(
        "vla.navsim_agent needs the official NAVSIM devkit (github.com/autonomousvision/navsim) and nuplan-devkit "
        "installed in this environment; the rest of the project does not"
    ) from err

from data_pipelines.types import AgentInput, Camera, Cameras, EgoStatus, Lidar
from vla.errors import VLAInputError

AGENT_NAME = "dipole_vla"
SENSOR_FIELDS = ("cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1", "cam_r2", "cam_b0", "lidar_pc")
"""The devkit's SensorConfig fields (cameras then lidar)."""


def _camera(devkit_camera: Any) -> Camera:
    return Camera(**{f.name: getattr(devkit_camera, f.name, None) for f in dataclasses.fields(Camera)})


def project_agent_input(devkit_input: Any) -> AgentInput:
    """The devkit's ``AgentInput`` as the project's (same field names; cameras and lidar per history frame)."""
    statuses = [
        EgoStatus(
            ego_pose=np.asarray(s.ego_pose), ego_velocity=np.asarray(s.ego_velocity),
            ego_acceleration=np.asarray(s.ego_acceleration), driving_command=np.asarray(s.driving_command),
            in_global_frame=bool(s.in_global_frame),
        )
        for s in devkit_input.ego_statuses
    ]
    cameras = [Cameras(**{f.name: _camera(getattr(c, f.name)) for f in dataclasses.fields(Cameras)})
               for c in devkit_input.cameras]
    lidars = [Lidar(lidar_pc=getattr(lidar, "lidar_pc", None)) for lidar in devkit_input.lidars]
    return AgentInput(ego_statuses=statuses, cameras=cameras, lidars=lidars)


class DipoleVLAAgent(AbstractAgent):
    """Runs a DipoleVLA checkpoint as a devkit agent: guided sampling with one ``omega`` and a fixed seed."""

    def __init__(self, trajectory_sampling: Any, checkpoint_path: Union[str, Path], omega: float = 1.0,
                 num_steps: Optional[int] = None, seed: Optional[int] = 0, mode: str = "guided",
                 device: Optional[str] = None):
        super().__init__(trajectory_sampling=trajectory_sampling, requires_scene=False)
        if checkpoint_path is None or str(checkpoint_path) in ("", "???"):
            raise VLAInputError("checkpoint_path", "set agent.checkpoint_path to a DipoleVLA checkpoint directory")
        self.checkpoint_path = Path(checkpoint_path)
        self.omega = float(omega)
        self.num_steps = num_steps
        self.seed = seed
        self.mode = mode
        self.device_name = device
        self._planner = None

    def name(self) -> str:
        return AGENT_NAME

    def initialize(self) -> None:
        """Load the checkpoint (once per worker)."""
        if self._planner is not None:
            return
        import torch

        from vla.modeling_dipole import DipoleVLA
        from vla.planner import DipolePlanner

        if not self.checkpoint_path.is_dir():
            raise VLAInputError("checkpoint_path", f"{self.checkpoint_path} is not a checkpoint directory")
        device = torch.device(self.device_name or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = DipoleVLA.from_pretrained(self.checkpoint_path).to(device).eval()
        self._planner = DipolePlanner(model, omega=self.omega, num_steps=self.num_steps, mode=self.mode,
                                      seed=self.seed)

    def get_sensor_config(self) -> Any:
        """The cameras the checkpoint reads, at the current history frame only; no lidar."""
        self.initialize()
        wanted = self._planner.sensor_config()
        return DevkitSensorConfig(**{name: getattr(wanted, name) for name in SENSOR_FIELDS})

    def compute_trajectory(self, agent_input: Any) -> Any:
        """Plan from the devkit's AgentInput; returns the devkit's Trajectory (float32 poses, rear-axle frame)."""
        self.initialize()
        poses = self._planner.compute_trajectory(project_agent_input(agent_input))
        num_poses = int(getattr(self._trajectory_sampling, "num_poses"))
        if poses.shape != (num_poses, 3):
            raise VLAInputError("trajectory_sampling", f"planned poses have shape {poses.shape}, the agent config "
                                f"asks for ({num_poses}, 3)")
        return DevkitTrajectory(np.asarray(poses, dtype=np.float32), self._trajectory_sampling)
