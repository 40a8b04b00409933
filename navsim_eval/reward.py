"""PDM score as a reward G(s, a) for RL fine-tuning: `PDMReward(tokens, poses (B, K, 8, 3)) -> RewardResult`.

Each scene's K candidates are scored in one vectorised call against its metric cache (PDM-Closed reference
included once); caches come from a ``MetricCacheProvider`` over the caller's scene loader (logs read once).
Sub-metrics are returned under their short names (NC, DAC, ..., PDMS / EPDMS; ``navsim_eval.names``), which is
what the trainer logs. v2 rewards have no previous-scene trajectory, so EC is undefined and the EPDMS denominator is
14 (spec §8.4). Invalid candidates (NaN, wrong shape) and scenes without a metric cache are reported in
`valid` / `errors` and get NaN, never 0.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from navsim_eval.names import SCORE_SHORT_NAME, short_name
from navsim_eval.pdm.constants import SUBMISSION_NUM_POSES, check_version
from navsim_eval.pdm.errors import ScoringError
from navsim_eval.pdm.metric_cache import MetricCacheProvider
from navsim_eval.pdm.scorer import METRICS, score_trajectories
from navsim_eval.pdm.trajectory import MAX_ABS_POSITION_M
from navsim_eval.worker_pool import worker_pool

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
CacheProvider = Callable[[str], Any]  # token -> MetricCache (raises DataError when unavailable)
MEMO_SIZE = 4096  # metric caches a reward process keeps in memory (rounds score the same scenes again)


@dataclass
class RewardResult:
    """Scores of B scenes x K candidates.

    `scores` (B, K): PDMS (v1) / EPDMS without EC (v2), NaN where invalid; `sub_metrics` short name -> (B, K)
    (``navsim_eval.names``; v2 after the human filter; the score as PDMS / EPDMS); `valid` (B, K) bool;
    `errors` token -> reason (scene-level failures and the first invalid candidate of a scene).
    """

    scores: np.ndarray
    sub_metrics: dict[str, np.ndarray]
    valid: np.ndarray
    errors: dict[str, str]


def _score_scene(cache, poses: np.ndarray, version: str) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, str]:
    """(scores (K,), sub-metrics, valid (K,), error) of one scene's candidates (invalid ones left NaN)."""
    num = len(poses)
    scores = np.full(num, np.nan)
    metrics = {name: np.full(num, np.nan) for name in METRICS[version]}
    finite = np.all(np.isfinite(poses.reshape(num, -1)), axis=1)
    with np.errstate(invalid="ignore"):
        finite &= np.all(np.abs(poses[..., :2].reshape(num, -1)) <= MAX_ABS_POSITION_M, axis=1)
    error = "" if finite.all() else f"{int((~finite).sum())} candidate(s) with non-finite or out-of-range poses"
    if finite.any():
        table = score_trajectories(cache, poses[finite], version)
        scores[finite] = table.score
        for name, values in table.metrics.items():
            metrics[name][finite] = values
    return scores, metrics, finite, error


def _worker_score(task: tuple) -> tuple:
    """Process-pool entry: load (or receive) the cache and score one scene."""
    token, cache_or_none, poses, version = task
    try:
        cache = cache_or_none if cache_or_none is not None else _WORKER_PROVIDER(token)
        return (token,) + _score_scene(cache, poses, version)
    except Exception as exc:  # noqa: BLE001 - one scene's failure is reported, the batch goes on
        return token, None, None, None, f"{type(exc).__name__}: {exc}"


_WORKER_PROVIDER: Optional[CacheProvider] = None


def _init_worker(provider: Optional[CacheProvider]) -> None:
    global _WORKER_PROVIDER
    _WORKER_PROVIDER = provider


class PDMReward:
    """Callable reward: `reward(tokens, poses (B, K, 8, 3)) -> RewardResult`.

    Metric caches come from a mapping {token: MetricCache}, a MetricCacheStore folder (read as it is), or any
    callable token -> MetricCache (a ``MetricCacheProvider``: see :meth:`from_loader`). `num_workers` > 0 scores
    scenes in a process pool (caches are loaded inside the workers when they come from a folder or callable;
    mappings are sent with each task).
    """

    def __init__(self, caches: Union[Mapping[str, Any], PathLike, CacheProvider], version: str = "v1",
                 num_workers: int = 0):
        check_version(version)
        self.version = version
        self.num_workers = int(num_workers)
        self._mapping: Optional[Mapping[str, Any]] = None
        self._provider: Optional[CacheProvider] = None
        if isinstance(caches, Mapping):
            self._mapping = caches
        elif isinstance(caches, (str, Path)):
            self._provider = MetricCacheProvider(version, store=caches, build_missing=False, memo_size=MEMO_SIZE)
        elif callable(caches):
            self._provider = caches
        else:
            raise ScoringError(f"caches must be a mapping, a cache folder or a callable, got {type(caches).__name__}")
        self._pool: Optional[ProcessPoolExecutor] = None

    @classmethod
    def from_loader(cls, loader, data_paths, cache_dir: PathLike, version: str = "v1",
                    num_workers: int = 0) -> "PDMReward":
        """Reward over the scenes of the caller's `SceneLoader`: metric caches are built on first use from its
        scenes (and the maps of `data_paths`) into `cache_dir/<version>`, and rebuilt when stale."""
        provider = MetricCacheProvider(version, loader, maps_root=data_paths.require_maps_root(),
                                       map_version=data_paths.map_version, store=Path(cache_dir) / version,
                                       memo_size=MEMO_SIZE)
        return cls(provider, version=version, num_workers=num_workers)

    @classmethod
    def from_split(cls, data_paths, split, cache_dir: PathLike, version: str = "v1",
                   num_workers: int = 0) -> "PDMReward":
        """Convenience for callers without a loader: reads the split's logs into a new `SceneLoader`."""
        from data_pipelines.scene_loader import SceneLoader

        return cls.from_loader(SceneLoader.from_split(split, data_paths), data_paths, cache_dir, version, num_workers)

    def _cache_of(self, token: str):
        if self._mapping is not None:
            if token not in self._mapping:
                raise ScoringError(f"no metric cache for token {token!r}")
            return self._mapping[token]
        return self._provider(token)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = worker_pool(self.num_workers, initializer=_init_worker, initargs=(self._provider,))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def __call__(self, tokens: Sequence[str], poses) -> RewardResult:
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 4 or poses.shape[0] != len(tokens) or poses.shape[2:] != (SUBMISSION_NUM_POSES, 3):
            raise ScoringError(f"poses must be (B={len(tokens)}, K, {SUBMISSION_NUM_POSES}, 3), got {poses.shape}")
        batch, num = poses.shape[:2]
        scores = np.full((batch, num), np.nan)
        metrics = {name: np.full((batch, num), np.nan) for name in METRICS[self.version]}
        valid = np.zeros((batch, num), dtype=bool)
        errors: dict[str, str] = {}

        def store(index: int, result: tuple) -> None:
            token, s, m, v, error = result
            if error:
                errors[token] = error
            if s is None:
                return
            scores[index], valid[index] = s, v
            for name, values in m.items():
                metrics[name][index] = values

        tasks = [(str(t), self._mapping[t] if self._mapping is not None and t in self._mapping else None,
                  poses[i], self.version) for i, t in enumerate(tokens)]
        if self.num_workers > 0 and batch > 1:
            if self._mapping is not None and any(task[1] is None for task in tasks):
                missing = [task[0] for task in tasks if task[1] is None]
                for index, task in enumerate(tasks):
                    if task[1] is None:
                        store(index, (task[0], None, None, None, f"ScoringError: no metric cache for token {task[0]!r}"))
                tasks_to_run = [(i, t) for i, t in enumerate(tasks) if t[1] is not None]
                logger.debug("no metric cache for %s", missing)
            else:
                tasks_to_run = list(enumerate(tasks))
            results = self._executor().map(_worker_score, [t for _, t in tasks_to_run])
            for (index, _), result in zip(tasks_to_run, results):
                store(index, result)
        else:
            for index, (token, _, scene_poses, version) in enumerate(tasks):
                try:
                    store(index, (token,) + _score_scene(self._cache_of(token), scene_poses, version))
                except Exception as exc:  # noqa: BLE001 - reported per token, the batch goes on
                    store(index, (token, None, None, None, f"{type(exc).__name__}: {exc}"))
        sub_metrics = {short_name(name, self.version): values for name, values in metrics.items()}
        sub_metrics[SCORE_SHORT_NAME[self.version]] = scores.copy()
        return RewardResult(scores=scores, sub_metrics=sub_metrics, valid=valid, errors=errors)


__all__ = ["PDMReward", "RewardResult"]
