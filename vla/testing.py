"""Fixtures for tests and benchmarks: synthetic AgentInputs and target poses, tiny models with statistics,
weight perturbation. Plain library code (no test framework imports); nothing is downloaded."""

from __future__ import annotations

import numpy as np
import torch

from data_pipelines.types import AgentInput, Cameras, EgoStatus, Lidar
from vla.modeling_dipole import DipoleVLA
from vla.processing_dipole import compute_normalization_stats
from vla.presets import build_config

NUM_FRAMES = 4  # history frames of an AgentInput, current frame last (SceneFilter default; specs/navsim_data.md)
FRONT_CAMERAS = ("cam_l0", "cam_f0", "cam_r0")


def make_agent_input(rng: np.random.Generator, speed: float = 5.0, command: int = 1,
                     image_shape: tuple = (36, 64, 3)) -> AgentInput:
    """A 4-frame AgentInput driving straight at `speed`, with random front images in the current frame."""
    statuses = []
    for i in range(NUM_FRAMES):
        back = (NUM_FRAMES - 1 - i) * 0.5 * speed
        statuses.append(EgoStatus(
            ego_pose=np.array([-back, 0.05 * rng.normal(), 0.02 * (i - 3)], dtype=np.float32),
            ego_velocity=np.array([speed, 0.1], dtype=np.float32),
            ego_acceleration=np.array([0.3, -0.1], dtype=np.float32),
            driving_command=np.eye(4, dtype=np.float32)[command],
        ))
    cameras = [Cameras() for _ in range(NUM_FRAMES)]
    for name in FRONT_CAMERAS:
        getattr(cameras[-1], name).image = rng.integers(0, 256, image_shape, dtype=np.uint8)
    return AgentInput(statuses, cameras, [Lidar() for _ in range(NUM_FRAMES)])


def make_target_poses(rng: np.random.Generator, n: int, speed: float = 5.0) -> np.ndarray:
    """(n, 8, 3) plausible future poses: forward motion with a little curvature."""
    t = np.arange(1, 9, dtype=np.float32) * 0.5
    curvature = rng.normal(0.0, 0.02, size=(n, 1)).astype(np.float32)
    x = speed * t[None] + rng.normal(0.0, 0.2, size=(n, 8)).astype(np.float32)
    heading = curvature * x
    y = 0.5 * curvature * x**2
    return np.stack([x, y, heading], axis=-1).astype(np.float32)


def tiny_model(preset: str = "tiny-florence2", seed: int = 0, overrides=None) -> DipoleVLA:
    """A tiny random model with normalisation statistics from synthetic targets."""
    torch.manual_seed(seed)
    model = DipoleVLA(build_config(preset, overrides=overrides))
    rng = np.random.default_rng(seed)
    model.set_normalization_stats(compute_normalization_stats(make_target_poses(rng, 64)))
    return model


def perturb(module: torch.nn.Module, scale: float = 0.05, seed: int = 0, only_lora: bool = False,
            adapter: str | None = None) -> None:
    """Add Gaussian noise to parameters (adaLN-zero gates and LoRA B start at 0, which would hide bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if only_lora and "lora_" not in name:
                continue
            if adapter is not None and f".{adapter}." not in name:
                continue
            param.add_(scale * torch.randn(param.shape, generator=gen))


__all__ = ["make_agent_input", "make_target_poses", "tiny_model", "perturb", "NUM_FRAMES", "FRONT_CAMERAS"]
