"""Fixtures of the synthetic-world tests: one tiny dataset generated per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_pipelines.synthetic.config import build_config
from data_pipelines.synthetic.generate import DatasetInfo, build_instances, generate_dataset


@pytest.fixture(scope="session")
def tiny_config():
    return build_config("tiny")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory, tiny_config) -> DatasetInfo:
    return generate_dataset(tiny_config, tmp_path_factory.mktemp("synthetic_tiny"))


@pytest.fixture(scope="session")
def tiny_instances(tiny_config):
    """The tiny dataset's layout instances, keyed by (location, index)."""
    return {(i.location, i.index): i for insts in build_instances(tiny_config).values() for i in insts}


@pytest.fixture(scope="session")
def golden_frames(golden_dir: Path) -> list[dict]:
    """Frame 3 of every golden log (official OpenScene format)."""
    import pickle

    frames = []
    for path in sorted((golden_dir / "navsim_logs" / "synthetic_public").glob("*.pkl")):
        with open(path, "rb") as f:
            frames.append(pickle.load(f)[3])
    return frames
