"""Fixtures of the data-layer tests: golden OpenScene logs and helpers writing sensor blobs / broken files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from data_pipelines.log_reader import find_log_files, load_log, log_name_of

GOLDEN_SPLIT = "synthetic_public"


@pytest.fixture(scope="session")
def golden_logs_dir(golden_dir: Path) -> Path:
    return golden_dir / "navsim_logs" / GOLDEN_SPLIT


@pytest.fixture(scope="session")
def golden_maps_root(golden_dir: Path) -> Path:
    return golden_dir / "maps"


@pytest.fixture(scope="session")
def golden_logs(golden_logs_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every golden log, keyed by log name (read once per session; tests must not mutate the frames)."""
    return {log_name_of(p): load_log(p) for p in find_log_files(golden_logs_dir)}


@pytest.fixture(scope="session")
def golden_scenes(golden_dir: Path) -> dict[str, Any]:
    return json.loads((golden_dir / "scenes.json").read_text())


@pytest.fixture(scope="session")
def golden_trajectories(golden_dir: Path) -> dict[str, Any]:
    return json.loads((golden_dir / "trajectories.json").read_text())
