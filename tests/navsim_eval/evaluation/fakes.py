"""Small stand-ins for scenes, sources, scorers and the model, shared by the evaluation tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from data_pipelines.types import AgentInput, Cameras, EgoStatus, Lidar


def agent_input(speed: float) -> AgentInput:
    status = EgoStatus(np.zeros(3, np.float32), np.array([speed, 0.0], np.float32), np.zeros(2, np.float32),
                       np.array([0, 1, 0, 0]))
    return AgentInput([status] * 4, [Cameras()] * 4, [Lidar()] * 4)


class FakeScene:
    def __init__(self, token: str, pose=(100.0, 50.0, 0.0), speed: float = 5.0):
        self.token = token
        self.map_api = None
        self.speed = speed
        self.scene_metadata = SimpleNamespace(initial_token=token, log_name=f"log_{token[:2]}", map_name="loc")
        self.current_frame = SimpleNamespace(ego_status=SimpleNamespace(ego_pose=np.array(pose, dtype=np.float64)))

    def get_future_trajectory(self, num_poses: int = 8):
        poses = np.zeros((num_poses, 3))
        poses[:, 0] = self.speed * 0.5 * np.arange(1, num_poses + 1)
        return SimpleNamespace(poses=poses)


class FakeSource:
    """Tokens with fake scenes; tokens listed in ``broken`` fail to load."""

    def __init__(self, tokens, stage: int = 1, broken=(), poses=None):
        self._tokens = list(tokens)
        self.stage = stage
        self.broken = set(broken)
        self.poses = poses or {}
        self.loaded: list[str] = []

    @property
    def tokens(self):
        return list(self._tokens)

    def agent_input(self, token):
        if token in self.broken:
            raise FileNotFoundError(f"sensor file missing for {token}")
        self.loaded.append(token)
        return agent_input(5.0)

    def scene(self, token):
        return FakeScene(token, self.poses.get(token, (100.0, 50.0, 0.0)))

    def log_name(self, token):
        return f"log_{token[:2]}"


class FakeScorer:
    """score = min(1, final x / 20) ; NC = 1; raises for tokens in ``failing``."""

    def __init__(self, failing=()):
        self.failing = set(failing)
        self.calls = []

    def score(self, scene, poses, version):
        self.calls.append((scene.token, poses.shape[0], version))
        if scene.token in self.failing:
            raise RuntimeError("metric cache missing")
        out = []
        for candidate in poses:
            progress = float(np.clip(candidate[-1, 0] / 20.0, 0.0, 1.0))
            row = {"no_at_fault_collisions": 1.0, "drivable_area_compliance": 1.0, "ego_progress": progress,
                   "time_to_collision_within_bound": 1.0, "score": progress}
            if version == "v1":
                row["comfort"] = 1.0
            else:
                row.update(lane_keeping=1.0, history_comfort=1.0, traffic_light_compliance=1.0,
                           driving_direction_compliance=1.0)
            out.append(row)
        return out


class FakeModel(torch.nn.Module):
    """Model-shaped fake: x advances with omega (and seed) so that scores depend on omega."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.encode_calls = 0
        self.sample_calls = []
        self.processor = lambda agent_inputs: {"speed": torch.tensor([float(a.ego_statuses[-1].ego_velocity[0])
                                                                      for a in agent_inputs])}

    def encode(self, batch):
        self.encode_calls += 1
        return {"ctx": batch["speed"]}

    def sample(self, batch, omega=1.0, num_steps=10, num_samples=1, context=None, generator=None, mode="guided"):
        assert context is not None
        self.sample_calls.append((omega, mode, num_steps))
        batch_size = batch["speed"].shape[0]
        generators = generator if isinstance(generator, (list, tuple)) else [generator] * batch_size
        assert len(generators) == batch_size  # one generator per scene (DipoleVLA.sample's contract)
        noise = torch.stack([torch.rand(num_samples, 1, generator=g) for g in generators]) * 0.01
        def poses_for(w):
            x = (1.0 + w) * torch.arange(1, 9, dtype=torch.float32)
            out = torch.zeros(batch_size, num_samples, 8, 3)
            out[..., 0] = x + noise
            return out
        if mode == "base":
            return poses_for(0.0)
        if isinstance(omega, (list, tuple)):
            return torch.stack([poses_for(w) for w in omega], dim=1)
        return poses_for(omega)
