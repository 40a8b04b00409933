"""Shared helpers of the scorer tests: golden metric caches (built with our own planner) and golden rows."""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from data_pipelines.maps import load_map
from data_pipelines.scene_filter import SceneFilter
from data_pipelines.scene_loader import SceneLoader
from navsim_eval.pdm.metric_cache import MetricCache, build_metric_cache

GOLDEN_SPLIT = "synthetic_public"


@lru_cache(maxsize=2)
def scenes_info(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "scenes.json").read_text())


@lru_cache(maxsize=2)
def trajectories(golden_dir: Path) -> dict:
    return json.loads((golden_dir / "trajectories.json").read_text())


@lru_cache(maxsize=2)
def golden_rows(golden_dir: Path, version: str) -> dict[tuple[str, str], dict[str, str]]:
    with (golden_dir / f"scores_{version}.csv").open() as handle:
        return {(r["token"], r["trajectory"]): r for r in csv.DictReader(handle)}


@lru_cache(maxsize=1)
def _loader(golden_dir: Path) -> SceneLoader:
    scene_filter = SceneFilter(frame_interval=1, has_route=False)
    return SceneLoader(golden_dir / "navsim_logs" / GOLDEN_SPLIT, None, scene_filter)


@lru_cache(maxsize=400)
def golden_cache(golden_dir: Path, token: str, version: str) -> MetricCache:
    """Metric cache of a golden scene with the PDM-Closed reference from our own planner."""
    scene = _loader(golden_dir).get_scene_from_token(token)
    map_api = load_map(golden_dir / "maps", scene.scene_metadata.map_name)
    return build_metric_cache(scene, map_api, version)


def intermediates(golden_dir: Path, token: str) -> dict[str, np.ndarray]:
    with np.load(golden_dir / "intermediates" / f"{token}.npz") as data:
        return {key: data[key] for key in data.files}


def candidate_poses(golden_dir: Path, token: str, names) -> np.ndarray:
    table = trajectories(golden_dir)[token]
    return np.array([table[name] for name in names], dtype=np.float64)
