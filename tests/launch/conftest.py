"""Shared fixtures of the launch-script tests: a tiny synthetic world and a tiny checkpoint per session."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.scripts import load_script


def load_launch_script(name: str) -> ModuleType:
    """Import `launch/<name>.py` as a module (the launch folder is not a package)."""
    return load_script(f"launch/{name}.py")


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """A tiny synthetic dataset, generated once per test session."""
    from data_pipelines.synthetic.config import build_config
    from data_pipelines.synthetic.generate import generate_dataset

    root = tmp_path_factory.mktemp("tiny_world_launch")
    generate_dataset(build_config("tiny"), root)
    return root


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised tiny DipoleVLA saved with from_pretrained-compatible files."""
    import torch

    from vla import DipoleVLA, compute_normalization_stats
    from vla.presets import build_config

    root = tmp_path_factory.mktemp("tiny_checkpoint_launch")
    torch.manual_seed(0)
    model = DipoleVLA(build_config("tiny-timm-lm"))
    targets = np.zeros((16, 8, 3))
    targets[:, :, 0] = np.arange(1, 9) * 2.0
    targets += np.random.default_rng(0).normal(scale=0.5, size=targets.shape)
    model.set_normalization_stats(compute_normalization_stats(targets))
    model.save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def bf16_checkpoint(tmp_path_factory) -> Path:
    """A tiny DipoleVLA (Florence-2 preset: a float32 sinusoidal position table in the head) saved in bfloat16."""
    import torch

    from vla.testing import perturb, tiny_model

    root = tmp_path_factory.mktemp("tiny_bf16_checkpoint_launch")
    model = tiny_model("tiny-florence2")
    perturb(model.head, seed=3)
    model.to(torch.bfloat16).save_pretrained(root)
    return root
