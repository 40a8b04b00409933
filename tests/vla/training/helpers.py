"""Small fakes for trainer tests: synthetic scene items and a smooth reward (no scorer, no data on disk)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_pipelines.types import AgentInput, Camera, Cameras, EgoStatus, Lidar, CAMERA_NAMES

IMAGE_HW = (36, 64)


def make_agent_input(rng: np.random.Generator, speed: float) -> AgentInput:
    statuses, cameras = [], []
    for i in range(4):
        statuses.append(EgoStatus(
            ego_pose=np.array([-(3 - i) * 0.5 * speed, 0.0, 0.0]), ego_velocity=np.array([speed, 0.0]),
            ego_acceleration=np.zeros(2), driving_command=np.array([0, 1, 0, 0]),
        ))
        cams = {name.lower(): Camera() for name in CAMERA_NAMES}
        if i == 3:
            for name in ("cam_l0", "cam_f0", "cam_r0"):
                cams[name] = Camera(image=rng.integers(0, 255, size=IMAGE_HW + (3,), dtype=np.uint8))
        cameras.append(Cameras(**cams))
    return AgentInput(ego_statuses=statuses, cameras=cameras, lidars=[Lidar() for _ in range(4)])


def make_items(n: int, seed: int = 0) -> list[dict]:
    """Scenes driving straight at various speeds; target = constant-speed trajectory."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        speed = float(rng.uniform(2.0, 10.0))
        t = 0.5 * np.arange(1, 9)
        target = np.stack([speed * t, np.zeros(8), np.zeros(8)], axis=1).astype(np.float32)
        items.append({"token": f"tok{seed}_{i:04d}", "agent_input": make_agent_input(rng, speed),
                      "target_poses": target})
    return items


@dataclass
class FakeResult:
    scores: np.ndarray
    sub_metrics: dict
    valid: np.ndarray
    errors: dict = field(default_factory=dict)


class DistanceReward:
    """Reward = exp(-mean L2 to the scene's target / 20 m); tokens in ``fail`` are reported as failures."""

    def __init__(self, items, fail=()):
        self.targets = {it["token"]: np.asarray(it["target_poses"]) for it in items}
        self.fail = set(fail)
        self.calls = 0

    def __call__(self, tokens, poses):
        self.calls += 1
        poses = np.asarray(poses)
        target = np.stack([self.targets[t] for t in tokens])[:, None]
        dist = np.linalg.norm(poses[..., :2] - target[..., :2], axis=-1).mean(-1)
        score = np.exp(-dist / 20.0)
        valid = np.array([[t not in self.fail] * poses.shape[1] for t in tokens])
        ep = np.clip(poses[..., -1, 0] / np.maximum(target[..., -1, 0], 1e-3), 0, 1)
        subs = {"NC": (dist < 8).astype(float), "DAC": (dist < 6).astype(float), "EP": ep,
                "TTC": np.ones_like(score), "C": np.ones_like(score), "DDC": np.ones_like(score), "PDMS": score}
        errors = {t: "no metric cache" for t in tokens if t in self.fail}
        return FakeResult(np.where(valid, score, np.nan), subs, valid, errors)


def generate_tiny_world(root):
    """The synthetic generator's ``tiny`` preset written under ``root`` (about 10 s on one core)."""
    from data_pipelines.synthetic.config import build_config
    from data_pipelines.synthetic.generate import generate_dataset

    generate_dataset(build_config("tiny"), root)
    return root


def split_items(root, split_name: str, max_scenes=None, cache_agent_inputs=True):
    """(split, SceneDataset) of a split of a synthetic world, with the model's three front cameras."""
    from dataclasses import replace

    from data_pipelines.paths import DataPaths
    from data_pipelines.scene import SensorConfig
    from data_pipelines.scene_filter import load_split
    from data_pipelines.scene_loader import SceneLoader
    from data_pipelines.torch_dataset import SceneDataset

    paths = DataPaths.from_env(openscene_data_root=root)
    split = load_split(paths.splits_dir() / f"{split_name}.yaml")
    if max_scenes is not None:
        split = replace(split, scene_filter=replace(split.scene_filter, max_scenes=max_scenes))
    loader = SceneLoader.from_split(split, paths, sensor_config=SensorConfig.front_three_current())
    return paths, split, SceneDataset(loader, cache_agent_inputs=cache_agent_inputs)
