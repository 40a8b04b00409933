"""The devkit agent adapter against a stand-in of the devkit's classes injected into sys.modules.

The stand-ins copy the devkit's field names, defaults and checks (navsim@main ``navsim/common/dataclasses.py``,
``navsim/agents/abstract_agent.py``; nuplan ``TrajectorySampling``), not its code.
"""

from __future__ import annotations

import importlib
import sys
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
AGENT_YAML = REPO / "configs" / "navsim_devkit" / "agent" / "dipole_vla_agent.yaml"


def _devkit_modules() -> dict[str, types.ModuleType]:
    class TrajectorySampling:
        def __init__(self, num_poses=None, time_horizon=None, interval_length=None):
            if num_poses is None:
                num_poses = int(time_horizon / interval_length)
            elif time_horizon is None:
                time_horizon = num_poses * interval_length
            elif interval_length is None:
                interval_length = time_horizon / num_poses
            if abs(num_poses * interval_length - time_horizon) > 1e-9:
                raise ValueError("inconsistent sampling")
            self.num_poses, self.time_horizon, self.interval_length = int(num_poses), float(time_horizon), float(
                interval_length)

    @dataclass
    class Camera:
        image: Optional[np.ndarray] = None
        sensor2lidar_rotation: Optional[np.ndarray] = None
        sensor2lidar_translation: Optional[np.ndarray] = None
        intrinsics: Optional[np.ndarray] = None
        distortion: Optional[np.ndarray] = None
        camera_path: Optional[Path] = None

    @dataclass
    class Cameras:
        cam_f0: Camera
        cam_l0: Camera
        cam_l1: Camera
        cam_l2: Camera
        cam_r0: Camera
        cam_r1: Camera
        cam_r2: Camera
        cam_b0: Camera

    @dataclass
    class Lidar:
        lidar_pc: Optional[np.ndarray] = None
        lidar_path: Optional[Path] = None

    @dataclass
    class EgoStatus:
        ego_pose: np.ndarray
        ego_velocity: np.ndarray
        ego_acceleration: np.ndarray
        driving_command: np.ndarray
        in_global_frame: bool = False

    @dataclass
    class AgentInput:
        ego_statuses: List[EgoStatus]
        cameras: List[Cameras]
        lidars: List[Lidar]

    @dataclass
    class SensorConfig:
        cam_f0: Union[bool, List[int]]
        cam_l0: Union[bool, List[int]]
        cam_l1: Union[bool, List[int]]
        cam_l2: Union[bool, List[int]]
        cam_r0: Union[bool, List[int]]
        cam_r1: Union[bool, List[int]]
        cam_r2: Union[bool, List[int]]
        cam_b0: Union[bool, List[int]]
        lidar_pc: Union[bool, List[int]]

    @dataclass
    class Trajectory:
        poses: np.ndarray
        trajectory_sampling: TrajectorySampling = TrajectorySampling(time_horizon=4, interval_length=0.5)

        def __post_init__(self):
            assert self.poses.ndim == 2
            assert self.poses.shape[0] == self.trajectory_sampling.num_poses
            assert self.poses.shape[1] == 3

    class AbstractAgent(torch.nn.Module, ABC):
        def __init__(self, trajectory_sampling, requires_scene: bool = False):
            super().__init__()
            self.requires_scene = requires_scene
            self._trajectory_sampling = trajectory_sampling

        @abstractmethod
        def name(self) -> str: ...

        @abstractmethod
        def get_sensor_config(self): ...

        @abstractmethod
        def initialize(self) -> None: ...

        def compute_trajectory(self, agent_input):
            raise NotImplementedError

    modules = {name: types.ModuleType(name) for name in (
        "navsim", "navsim.common", "navsim.common.dataclasses", "navsim.agents", "navsim.agents.abstract_agent",
        "nuplan", "nuplan.planning", "nuplan.planning.simulation", "nuplan.planning.simulation.trajectory",
        "nuplan.planning.simulation.trajectory.trajectory_sampling")}
    dataclasses_module = modules["navsim.common.dataclasses"]
    for cls in (Camera, Cameras, Lidar, EgoStatus, AgentInput, SensorConfig, Trajectory):
        cls.__module__ = dataclasses_module.__name__
        setattr(dataclasses_module, cls.__name__, cls)
    AbstractAgent.__module__ = "navsim.agents.abstract_agent"
    modules["navsim.agents.abstract_agent"].AbstractAgent = AbstractAgent
    modules["nuplan.planning.simulation.trajectory.trajectory_sampling"].TrajectorySampling = TrajectorySampling
    return modules


@pytest.fixture()
def devkit(monkeypatch):
    modules = _devkit_modules()
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "vla.navsim_agent", raising=False)
    yield modules
    sys.modules.pop("vla.navsim_agent", None)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from vla import DipoleVLA, compute_normalization_stats
    from vla.presets import build_config

    root = tmp_path_factory.mktemp("navsim_agent_checkpoint")
    torch.manual_seed(0)
    model = DipoleVLA(build_config("tiny-timm-lm"))
    targets = np.zeros((8, 8, 3))
    targets[:, :, 0] = np.arange(1, 9) * 2.0
    model.set_normalization_stats(compute_normalization_stats(targets))
    model.save_pretrained(root)
    return root


def _instantiate(node):
    """Hydra's `_target_` instantiation, enough for the agent YAML (recursive, keyword arguments)."""
    if isinstance(node, dict):
        kwargs = {k: _instantiate(v) for k, v in node.items() if k not in ("_target_", "_convert_")}
        if "_target_" not in node:
            return kwargs
        module_name, _, attr = node["_target_"].rpartition(".")
        return getattr(importlib.import_module(module_name), attr)(**kwargs)
    return node


def _devkit_agent_input(devkit, rng) -> object:
    dc = devkit["navsim.common.dataclasses"]
    statuses, cameras, lidars = [], [], []
    for index in range(4):
        statuses.append(dc.EgoStatus(
            ego_pose=np.array([-1.5 * (3 - index), 0.0, 0.0], dtype=np.float32),
            ego_velocity=np.array([3.0, 0.0], dtype=np.float32), ego_acceleration=np.zeros(2, dtype=np.float32),
            driving_command=np.array([0, 1, 0, 0])))
        per_camera = {}
        for name in ("cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1", "cam_r2", "cam_b0"):
            if index == 3 and name in ("cam_f0", "cam_l0", "cam_r0"):
                per_camera[name] = dc.Camera(image=rng.integers(0, 255, (90, 160, 3), dtype=np.uint8),
                                             sensor2lidar_rotation=np.eye(3), sensor2lidar_translation=np.zeros(3),
                                             intrinsics=np.eye(3), distortion=np.zeros(5),
                                             camera_path=Path(f"log/{name.upper()}/x.jpg"))
            else:
                per_camera[name] = dc.Camera()
        cameras.append(dc.Cameras(**per_camera))
        lidars.append(dc.Lidar())
    return dc.AgentInput(statuses, cameras, lidars)


def test_agent_from_the_hydra_yaml_plans_with_devkit_types(devkit, checkpoint):
    config = yaml.safe_load(AGENT_YAML.read_text())
    assert config["checkpoint_path"] == "???"  # mandatory value, set on the devkit command line
    config["checkpoint_path"] = str(checkpoint)
    config["device"] = "cpu"
    agent = _instantiate(config)
    abstract = devkit["navsim.agents.abstract_agent"].AbstractAgent
    dc = devkit["navsim.common.dataclasses"]
    assert isinstance(agent, abstract) and agent.requires_scene is False and agent.name() == "dipole_vla"
    agent.initialize()
    sensors = agent.get_sensor_config()
    assert isinstance(sensors, dc.SensorConfig)
    assert (sensors.cam_f0, sensors.cam_l0, sensors.cam_r0) == ([3], [3], [3])
    assert sensors.cam_b0 is False and sensors.lidar_pc is False

    agent_input = _devkit_agent_input(devkit, np.random.default_rng(0))
    trajectory = agent.compute_trajectory(agent_input)
    assert isinstance(trajectory, dc.Trajectory)
    assert trajectory.poses.shape == (8, 3) and trajectory.poses.dtype == np.float32
    assert np.isfinite(trajectory.poses).all()
    sampling = trajectory.trajectory_sampling
    assert (sampling.num_poses, sampling.time_horizon, sampling.interval_length) == (8, 4.0, 0.5)

    # Same poses as the project's planner on the converted input with the same seed and omega.
    from vla import DipoleVLA
    from vla.navsim_agent import project_agent_input
    from vla.planner import DipolePlanner

    planner = DipolePlanner(DipoleVLA.from_pretrained(checkpoint).eval(), omega=config["omega"], seed=config["seed"])
    expected = planner.compute_trajectory(project_agent_input(agent_input))
    np.testing.assert_allclose(trajectory.poses, expected, atol=1e-5)


def test_conversion_keeps_every_devkit_field(devkit):
    from data_pipelines.types import AgentInput
    from vla.navsim_agent import project_agent_input

    devkit_input = _devkit_agent_input(devkit, np.random.default_rng(1))
    ours = project_agent_input(devkit_input)
    assert isinstance(ours, AgentInput) and len(ours.ego_statuses) == len(ours.cameras) == len(ours.lidars) == 4
    np.testing.assert_array_equal(ours.ego_statuses[0].ego_pose, devkit_input.ego_statuses[0].ego_pose)
    np.testing.assert_array_equal(ours.cameras[3].cam_f0.image, devkit_input.cameras[3].cam_f0.image)
    assert ours.cameras[3].cam_f0.camera_path == devkit_input.cameras[3].cam_f0.camera_path
    assert ours.cameras[0].cam_f0.image is None


def test_missing_checkpoint_is_a_clear_error(devkit, tmp_path):
    from vla.errors import VLAInputError
    from vla.navsim_agent import DipoleVLAAgent

    sampling = devkit["nuplan.planning.simulation.trajectory.trajectory_sampling"].TrajectorySampling(
        time_horizon=4, interval_length=0.5)
    with pytest.raises(VLAInputError, match="checkpoint_path"):
        DipoleVLAAgent(sampling, checkpoint_path="???")
    with pytest.raises(VLAInputError, match="not a checkpoint directory"):
        DipoleVLAAgent(sampling, checkpoint_path=tmp_path / "absent").initialize()


def test_module_needs_the_devkit(monkeypatch):
    monkeypatch.setitem(sys.modules, "navsim", None)  # import navsim -> ImportError
    monkeypatch.delitem(sys.modules, "vla.navsim_agent", raising=False)
    with pytest.raises(ImportError, match="NAVSIM devkit"):
        importlib.import_module("vla.navsim_agent")
    sys.modules.pop("vla.navsim_agent", None)
