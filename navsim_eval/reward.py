"""PDM score as a reward G(s, a) for RL fine-tuning: `PDMReward(tokens, poses (B, K, 8, 3)) -> RewardResult`.

Each scene's K candidates are scored against its metric cache (PDM-Closed reference included once), several
scenes per `score_trajectories_batch` call; caches come from a ``MetricCacheProvider`` over the caller's scene loader (logs read once).
Sub-metrics are returned under their short names (NC, DAC, ..., PDMS / EPDMS; ``navsim_eval.names``), which is
what the trainer logs. v2 rewards have no previous-scene trajectory, so EC is undefined and the EPDMS denominator is
14 (spec §8.4). Invalid candidates (NaN, wrong shape) and scenes without a metric cache are reported in
`valid` / `errors` and get NaN, never 0.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from navsim_eval.names import SCORE_SHORT_NAME, short_name
from navsim_eval.names import weights as official_weights
from navsim_eval.pdm.constants import SUBMISSION_NUM_POSES, check_version
from navsim_eval.pdm.errors import ScoringError
from navsim_eval.pdm.metric_cache import MetricCacheProvider
from navsim_eval.pdm.scorer import METRICS, aggregate, score_trajectories_batch
from navsim_eval.pdm.trajectory import MAX_ABS_POSITION_M
from navsim_eval.worker_pool import worker_pool

PathLike = Union[str, Path]
CacheProvider = Callable[[str], Any]  # token -> MetricCache (raises DataError when unavailable)
MEMO_SIZE = 4096  # metric caches a reward process keeps in memory (rounds score the same scenes again)
# Scenes per score_trajectories_batch call: the multi-scene row of benchmarks/bench_pdm_score.py (docs/pdm_scorer.md).
SCENES_PER_CALL = 8


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


def shaped_weights(version: str, changes: Mapping[str, float]) -> dict[str, float]:
    """The weighted average's weights (column -> weight) with ``changes`` (short name -> weight, e.g. {"EP": 2})
    applied; a name that is not a weighted metric of the version, or a negative weight, is an error."""
    official = official_weights(version)
    by_short = {short_name(column, version): column for column in official}
    weights = dict(official)
    for name, value in changes.items():
        if name not in by_short:
            raise ScoringError(f"reward weights: {name!r} is not a weighted {version} metric; "
                               f"one of {sorted(by_short)}")
        if not (np.isfinite(value) and value >= 0):
            raise ScoringError(f"reward weights: {name} must be a finite weight >= 0, got {value}")
        weights[by_short[name]] = float(value)
    if sum(weights.values()) <= 0:
        raise ScoringError(f"reward weights: the weights of the weighted average sum to 0 ({weights})")
    return weights


def _finite_candidates(poses: np.ndarray) -> tuple[np.ndarray, str]:
    """(valid (K,), error) of one scene's candidates: finite poses within the position range."""
    num = len(poses)
    finite = np.all(np.isfinite(poses.reshape(num, -1)), axis=1)
    with np.errstate(invalid="ignore"):
        finite &= np.all(np.abs(poses[..., :2].reshape(num, -1)) <= MAX_ABS_POSITION_M, axis=1)
    error = "" if finite.all() else f"{int((~finite).sum())} candidate(s) with non-finite or out-of-range poses"
    return finite, error


def _score_chunk(tokens: Sequence[str], caches: Sequence[Any], poses: Sequence[np.ndarray], version: str) -> list[tuple]:
    """Score a chunk of scenes with one `score_trajectories_batch` call (one shared tracker simulation).

    `caches[i]` is scene i's metric cache or the exception raised when loading it. Returns per scene
    (token, scores (K,), sub-metrics, valid (K,), error); invalid candidates stay NaN, a scene without a cache
    gets (token, None, None, None, error). When the batch call raises, the scenes are scored one by one so the
    error is reported for the scene(s) it belongs to and the others are scored.
    """
    results: list[Optional[tuple]] = [None] * len(tokens)
    scored: list[tuple[int, np.ndarray, str]] = []
    for i, (token, cache, scene_poses) in enumerate(zip(tokens, caches, poses)):
        if isinstance(cache, Exception):
            results[i] = (token, None, None, None, f"{type(cache).__name__}: {cache}")
            continue
        finite, error = _finite_candidates(scene_poses)
        num = len(scene_poses)
        results[i] = (token, np.full(num, np.nan), {name: np.full(num, np.nan) for name in METRICS[version]},
                      finite, error)
        if finite.any():
            scored.append((i, finite, error))

    def fill(members: list[tuple[int, np.ndarray, str]]) -> None:
        tables = score_trajectories_batch([caches[i] for i, _, _ in members],
                                          [poses[i][finite] for i, finite, _ in members], version)
        for (i, finite, _), table in zip(members, tables):
            _, scores, metrics, _, _ = results[i]
            scores[finite] = table.score
            for name, values in table.metrics.items():
                metrics[name][finite] = values

    try:
        if scored:
            fill(scored)
    except Exception:  # noqa: BLE001 - find the failing scene(s); the others are scored
        for member in scored:
            try:
                fill([member])
            except Exception as exc:  # noqa: BLE001 - reported per token, the batch goes on
                results[member[0]] = (tokens[member[0]], None, None, None, f"{type(exc).__name__}: {exc}")
    return results


def _load_caches(tokens: Sequence[str], given: Sequence[Any], provider: Callable[[str], Any]) -> list[Any]:
    """Each token's metric cache: the given one, else from the provider (the exception when that fails)."""
    caches = []
    for token, cache in zip(tokens, given):
        if cache is None:
            try:
                cache = provider(token)
            except Exception as exc:  # noqa: BLE001 - reported per token, the batch goes on
                cache = exc
        caches.append(cache)
    return caches


def _worker_score(task: tuple) -> list[tuple]:
    """Process-pool entry: load (or receive) the caches of a chunk of scenes and score them together."""
    tokens, given, poses, version = task
    return _score_chunk(tokens, _load_caches(tokens, given, _WORKER_PROVIDER), poses, version)


_WORKER_PROVIDER: Optional[CacheProvider] = None


def _init_worker(provider: Optional[CacheProvider]) -> None:
    global _WORKER_PROVIDER
    _WORKER_PROVIDER = provider


class PDMReward:
    """Callable reward: `reward(tokens, poses (B, K, 8, 3)) -> RewardResult`.

    Metric caches come from a mapping {token: MetricCache}, a MetricCacheStore folder (read as it is), or any
    callable token -> MetricCache (a ``MetricCacheProvider``: see :meth:`from_loader`). Scenes are scored in
    chunks of `scenes_per_call` through `score_trajectories_batch` (one tracker simulation per chunk; results
    equal per-scene scoring). `num_workers` > 0 scores the chunks in a process pool (caches are loaded inside
    the workers when they come from a folder or callable; mappings are sent with each task).

    `weights` (short name -> weight, e.g. {"EP": 2.0}) shapes the reward: `scores` become the multiplicative
    metrics times the weighted average under those weights (the others official), a reported project choice
    (specs/dipole.md §5.2); `sub_metrics` keep the official score under its own name.
    """

    def __init__(self, caches: Union[Mapping[str, Any], PathLike, CacheProvider], version: str = "v1",
                 num_workers: int = 0, scenes_per_call: int = SCENES_PER_CALL,
                 weights: Optional[Mapping[str, float]] = None):
        check_version(version)
        self.weights = shaped_weights(version, weights) if weights else None
        if int(scenes_per_call) < 1:
            raise ScoringError(f"scenes_per_call must be >= 1, got {scenes_per_call}")
        self.version = version
        self.num_workers = int(num_workers)
        self.scenes_per_call = int(scenes_per_call)
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
                    num_workers: int = 0, weights: Optional[Mapping[str, float]] = None) -> "PDMReward":
        """Reward over the scenes of the caller's `SceneLoader`: metric caches are built on first use from its
        scenes (and the maps of `data_paths`) into `cache_dir/<version>`, and rebuilt when stale."""
        provider = MetricCacheProvider(version, loader, maps_root=data_paths.require_maps_root(),
                                       map_version=data_paths.map_version, store=Path(cache_dir) / version,
                                       memo_size=MEMO_SIZE)
        return cls(provider, version=version, num_workers=num_workers, weights=weights)

    @classmethod
    def from_split(cls, data_paths, split, cache_dir: PathLike, version: str = "v1",
                   num_workers: int = 0) -> "PDMReward":
        """Convenience for callers without a loader: reads the split's logs into a new `SceneLoader`."""
        from data_pipelines.scene_loader import SceneLoader

        return cls.from_loader(SceneLoader.from_split(split, data_paths), data_paths, cache_dir, version, num_workers)

    def _chunks(self, batch: int) -> list[tuple[int, int]]:
        """(first, last) scene ranges scored per `score_trajectories_batch` call: `scenes_per_call` scenes, fewer
        when that would leave workers idle."""
        size = self.scenes_per_call
        if self.num_workers > 0:
            size = max(1, min(size, -(-batch // self.num_workers)))
        return [(first, min(first + size, batch)) for first in range(0, batch, size)]

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

        tokens = [str(t) for t in tokens]
        chunks = self._chunks(batch)
        if self.num_workers > 0 and batch > 1:
            if self._mapping is not None:  # sent with the tasks; a missing token is that scene's error
                given = [self._mapping[t] if t in self._mapping else ScoringError(f"no metric cache for token {t!r}")
                         for t in tokens]
            else:  # loaded inside the workers
                given = [None] * batch
            tasks = [(tokens[a:b], given[a:b], list(poses[a:b]), self.version) for a, b in chunks]
            for (first, _), results in zip(chunks, self._executor().map(_worker_score, tasks)):
                for offset, result in enumerate(results):
                    store(first + offset, result)
        else:
            for first, last in chunks:
                caches = _load_caches(tokens[first:last], [None] * (last - first), self._cache_of)
                for offset, result in enumerate(_score_chunk(tokens[first:last], caches, list(poses[first:last]),
                                                             self.version)):
                    store(first + offset, result)
        sub_metrics = {short_name(name, self.version): values for name, values in metrics.items()}
        sub_metrics[SCORE_SHORT_NAME[self.version]] = scores.copy()
        if self.weights is not None:
            with np.errstate(invalid="ignore"):
                scores = np.where(valid, aggregate(self.version, metrics, self.weights)[1], np.nan)
        return RewardResult(scores=scores, sub_metrics=sub_metrics, valid=valid, errors=errors)


__all__ = ["PDMReward", "RewardResult"]
