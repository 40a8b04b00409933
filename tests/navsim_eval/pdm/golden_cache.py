"""Golden scenes for the metric-cache tests: scene windows of the golden logs and their intermediates."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from data_pipelines.maps import NuPlanMap, load_map
from data_pipelines.scene import Scene
from data_pipelines.scene_filter import SceneFilter
from data_pipelines.scene_loader import SceneLoader

GOLDEN_SPLIT = "synthetic_public"
NUM_HISTORY_FRAMES = 4
NUM_FUTURE_FRAMES = 10


@lru_cache(maxsize=2)
def golden_loader(golden_dir: Path) -> SceneLoader:
    """Every golden scene window (consecutive scenes of a log are one frame apart)."""
    scene_filter = SceneFilter(num_history_frames=NUM_HISTORY_FRAMES, num_future_frames=NUM_FUTURE_FRAMES,
                               frame_interval=1, has_route=False)
    return SceneLoader(golden_dir / "navsim_logs" / GOLDEN_SPLIT, None, scene_filter)


@lru_cache(maxsize=2)
def golden_tokens(golden_dir: Path) -> tuple[str, ...]:
    """The 140 golden scene tokens, log by log."""
    scenes = json.loads((golden_dir / "scenes.json").read_text())
    return tuple(token for log in scenes["logs"].values() for token in log["tokens"])


def representative_tokens(golden_dir: Path) -> list[str]:
    """One scene per (location, scene index modulo 7) pair, covering every layout and scene position."""
    scenes = json.loads((golden_dir / "scenes.json").read_text())
    chosen, seen = [], set()
    for log in scenes["logs"].values():
        for index, token in enumerate(log["tokens"]):
            key = (log["location"], index % 7)
            if key not in seen:
                seen.add(key)
                chosen.append(token)
    return chosen


def golden_scene(golden_dir: Path, token: str) -> tuple[Scene, NuPlanMap]:
    scene = golden_loader(golden_dir).get_scene_from_token(token)
    return scene, load_map(golden_dir / "maps", scene.scene_metadata.map_name)


def intermediates(golden_dir: Path, token: str) -> dict[str, np.ndarray]:
    with np.load(golden_dir / "intermediates" / f"{token}.npz") as data:
        return {key: data[key] for key in data.files}
