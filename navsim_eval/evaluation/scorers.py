"""Scoring adapter: (scene, K candidate trajectories, metric version) -> K dicts of official sub-metrics.

The harness talks to the native PDM scorer only through :class:`TrajectoryScorer`, so tests can pass a
small fake and the scorer can evolve behind :class:`NativeScorer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Protocol, Union

import numpy as np

from navsim_eval.evaluation.metrics import ALL_METRIC_COLUMNS, check_version

PathLike = Union[str, Path]


class TrajectoryScorer(Protocol):
    def score(self, scene: Any, poses: np.ndarray, version: str) -> list[dict[str, float]]:
        """Sub-metrics (official column names) and ``score`` of each of K candidates (K, 8, 3)."""
        ...


def _table_to_dicts(table: Any, num_candidates: int) -> list[dict[str, float]]:
    """Read a score table into K dicts: a ``ScoreTable`` (``.metrics`` dict + ``.score``) or a mapping."""
    if isinstance(table, dict):
        columns = table
    else:
        columns = {**getattr(table, "metrics", {}), "score": getattr(table, "score", None)}
    getter = columns.get
    out: list[dict[str, float]] = [{} for _ in range(num_candidates)]
    for column in ALL_METRIC_COLUMNS:
        values = getter(column, None)
        if values is None:
            continue
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape[0] != num_candidates:
            raise ValueError(f"score column {column!r} has {values.shape[0]} values for {num_candidates} candidates")
        for index in range(num_candidates):
            out[index][column] = float(values[index])
    if any("score" not in row for row in out):
        raise ValueError("the score table has no 'score' column")
    return out


class NativeScorer:
    """The project's PDM scorer: metric cache per scene (built on the fly or read from a store), then scoring.

    Caches come from one ``MetricCacheProvider`` per version. ``metric_cache_dir``: a ``MetricCacheStore``
    folder per version (``<dir>/<version>``) to read caches from (a missing token raises); an entry built from
    other data than the scene's frames / map file is rebuilt from the scene (and replaced) when the scene
    carries its map, else raises ``StaleMetricCacheError``. None builds each cache from the scene and its map.
    """

    def __init__(self, metric_cache_dir: Optional[PathLike] = None):
        self.metric_cache_dir = Path(metric_cache_dir) if metric_cache_dir is not None else None
        self._providers: dict[str, Any] = {}

    def provider(self, version: str) -> Any:
        from navsim_eval.pdm.metric_cache import MetricCacheProvider

        if version not in self._providers:
            store = self.metric_cache_dir / version if self.metric_cache_dir is not None else None
            self._providers[version] = MetricCacheProvider(version, store=store, build_missing=False)
        return self._providers[version]

    def _cache(self, scene: Any, version: str) -> Any:
        if self.metric_cache_dir is None and scene.map_api is None:
            raise ValueError(f"scene {scene.scene_metadata.initial_token}: no map to build the metric cache")
        return self.provider(version).get(scene.scene_metadata.initial_token, scene)

    def score_with_states(
        self, scene: Any, poses: np.ndarray, version: str
    ) -> tuple[list[dict[str, float]], np.ndarray]:
        """Sub-metrics of K candidates and their simulated states (K, 41, 11) (for extended comfort)."""
        from navsim_eval.pdm.scorer import score_trajectories

        check_version(version)
        poses = np.asarray(poses, dtype=np.float64)
        table = score_trajectories(self._cache(scene, version), poses, version)
        return _table_to_dicts(table, poses.shape[0]), np.asarray(table.simulated_states)

    def score(self, scene: Any, poses: np.ndarray, version: str) -> list[dict[str, float]]:
        return self.score_with_states(scene, poses, version)[0]
