"""Score many scenes: OpenScene logs + maps + {token: {name: poses}} -> rows with the official CSV columns.

Each token's scene is the window around the frame with that token (4 history frames including it, 10 future).
Scenes are grouped by log and scored in parallel worker processes; every failure is recorded per
(token, trajectory) in the `error` column and the rest is scored (nothing is skipped or scored 0).
v2 two-frame extended comfort pairs (token, name) with the same name at the previous scene of the log
(0.5 s earlier, start time within 0.55 s) when that scene is scored too.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from data_pipelines.errors import DataError, LogFileError, UnknownTokenError
from data_pipelines.log_reader import find_log_files, load_log, log_name_of
from data_pipelines.maps.nuplan_map import DEFAULT_MAP_VERSION
from data_pipelines.safe_pickle import UnsafePickleError, restricted_loads
from navsim_eval.names import EXTENDED_COMFORT, SCORE_COLUMN
from navsim_eval.pdm.constants import check_version
from navsim_eval.pdm.epdms import epdms_of_table, extended_comfort_to_previous
from navsim_eval.pdm.errors import ScoringError, TrajectoryError
from navsim_eval.pdm.metric_cache import MetricCacheProvider
from navsim_eval.pdm.scene_pairs import PreviousScene
from navsim_eval.pdm.scene_pairs import previous_scenes as previous_scene_pairs
from navsim_eval.pdm.scorer import METRICS, ScoreTable, score_trajectories
from navsim_eval.pdm.trajectory import validate_poses
from navsim_eval.submission.pickling import SUBMISSION_PICKLE
from navsim_eval.worker_pool import worker_pool

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
NUM_HISTORY_FRAMES = 4  # scene window: 4 history frames including the current one (spec §1.1)
NUM_FUTURE_FRAMES = 10  # navtest windows (v1 needs 10 for its observation)
MIN_FUTURE_FRAMES = {"v1": 10, "v2": 8}  # future frames each version's metric cache needs (spec §3.5, §3.7)
DEFAULT_TRAJECTORY_NAME = "trajectory"

COLUMNS = {
    "v1": ["token", "log_name", "trajectory", *METRICS["v1"], SCORE_COLUMN, "error"],
    "v2": ["token", "log_name", "trajectory", "previous_token", *METRICS["v2"], EXTENDED_COMFORT, SCORE_COLUMN,
           *[f"raw_{m}" for m in METRICS["v2"]], *[f"human_{m}" for m in METRICS["v2"]], "error"],
}
"""CSV columns per version: the official per-token columns (golden scores_v*.csv order) + diagnostics + error."""


# ----------------------------------------------------------------------------------------------- inputs


def normalise_trajectories(trajectories: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{token: poses} or {token: {name: poses}} (poses: array-like or objects with `.poses`) -> nested dict.

    Pose arrays are not validated here (bad ones become per-row errors at scoring time).
    """
    nested: dict[str, dict[str, Any]] = {}
    for token, value in trajectories.items():
        if isinstance(value, Mapping):
            nested[str(token)] = {str(name): _poses_of(poses) for name, poses in value.items()}
        else:
            nested[str(token)] = {DEFAULT_TRAJECTORY_NAME: _poses_of(value)}
    return nested


def _poses_of(value: Any) -> Any:
    return value.poses if hasattr(value, "poses") else value


def load_trajectories(path: PathLike) -> dict[str, dict[str, Any]]:
    """Read {token: poses} / {token: {name: poses}} from JSON or pickle, or an official submission pickle.

    Submission pickles: v1 `predictions` (list of {token: Trajectory}; one entry -> name "trajectory", several
    -> "prediction_<i>"), v2 `first_stage_predictions` (name "trajectory"). Pickles are read with the
    submission format's restricted unpickler (devkit classes map to stand-ins; any other class is refused).
    """
    path = Path(path)
    if not path.is_file():
        raise ScoringError(f"trajectory file {path} does not exist")
    try:
        if path.suffix.lower() == ".json":
            import json

            data = json.loads(path.read_text())
        else:
            data, _ = restricted_loads(path.read_bytes(), SUBMISSION_PICKLE, path)
    except UnsafePickleError as exc:
        raise ScoringError(f"trajectory file {path}: {exc.reason}") from exc
    except Exception as exc:  # noqa: BLE001 - any decoding failure is reported with the file name
        raise ScoringError(f"trajectory file {path}: cannot read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, Mapping):
        raise ScoringError(f"trajectory file {path}: expected a mapping, got {type(data).__name__}")
    nested = _nested_trajectories(data, path)
    if not nested:
        raise ScoringError(f"trajectory file {path}: holds no trajectories (nothing to score)")
    empty = [token for token, named in nested.items() if not named]
    if empty:
        raise ScoringError(f"trajectory file {path}: token(s) with no trajectories: {', '.join(empty[:5])}")
    return nested


def _nested_trajectories(data: Mapping[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    for key in ("predictions", "first_stage_predictions"):
        if key in data:
            predictions = data[key]
            if not isinstance(predictions, Sequence) or not predictions:
                raise ScoringError(f"trajectory file {path}: `{key}` must be a non-empty list of dicts")
            if len(predictions) == 1:
                return normalise_trajectories(predictions[0])
            nested: dict[str, dict[str, Any]] = {}
            for index, entry in enumerate(predictions):
                for token, trajectory in entry.items():
                    nested.setdefault(str(token), {})[f"prediction_{index}"] = _poses_of(trajectory)
            return nested
    return normalise_trajectories(data)


# ---------------------------------------------------------------------------------------------- scene index


@dataclass(frozen=True)
class FrameLocation:
    log_path: Path
    log_name: str
    frame_index: int
    timestamp: int


def index_logs(logs_root: PathLike, unreadable: Optional[dict[Path, str]] = None) -> dict[str, FrameLocation]:
    """token -> where its frame lives, for every OpenScene log pickle below `logs_root`.

    Logs that cannot be unpickled are logged and, when `unreadable` is given, recorded there (path -> reason).
    """
    index: dict[str, FrameLocation] = {}
    for path in find_log_files(logs_root):
        try:
            frames = load_log(path, validate=False)
        except LogFileError as exc:
            logger.warning("unreadable log: %s", exc)
            if unreadable is not None:
                unreadable[path] = str(exc)
            continue
        for i, frame in enumerate(frames):
            if isinstance(frame, dict) and "token" in frame:
                index[str(frame["token"])] = FrameLocation(path, log_name_of(path), i, int(frame.get("timestamp", 0)))
    return index


def scene_window(frames: list[dict], frame_index: int, version: str, token: str) -> list[dict]:
    """The frames of the token's scene: 3 before it, it, and up to 10 after it (error if too few)."""
    start = frame_index - (NUM_HISTORY_FRAMES - 1)
    if start < 0:
        raise ScoringError(f"token {token}: only {frame_index} history frames before it, need {NUM_HISTORY_FRAMES - 1}")
    future = min(NUM_FUTURE_FRAMES, len(frames) - frame_index - 1)
    if future < MIN_FUTURE_FRAMES[version]:
        raise ScoringError(f"token {token}: only {future} future frames, {version} needs {MIN_FUTURE_FRAMES[version]}")
    return frames[start : frame_index + 1 + future]


# --------------------------------------------------------------------------------------------- scoring


@dataclass
class ScoringConfig:
    """Where data lives and how to score."""

    version: str = "v1"
    maps_root: Optional[PathLike] = None
    map_version: str = DEFAULT_MAP_VERSION
    num_workers: int = 1
    cache_dir: Optional[PathLike] = None  # reuse / store metric caches (one sub-folder per version)
    require_cache: bool = False  # only read caches; a missing one is an error

    def __post_init__(self) -> None:
        check_version(self.version)


@dataclass
class TokenResult:
    """Scores of the named trajectories of one token (or the error that prevented scoring)."""

    token: str
    log_name: str
    timestamp: int
    names: list[str]
    table: Optional[ScoreTable] = None
    row_errors: dict[str, str] = field(default_factory=dict)  # name -> error (bad poses)
    error: Optional[str] = None  # the whole token failed


def cache_provider(config: ScoringConfig) -> MetricCacheProvider:
    """The metric-cache provider of a scoring run: caches stored under `cache_dir/<version>` (when given), built
    from each token's scene window with the maps below `maps_root`; `require_cache` only reads them."""
    store = Path(config.cache_dir) / config.version if config.cache_dir is not None else None
    return MetricCacheProvider(config.version, maps_root=config.maps_root, map_version=config.map_version,
                               store=store, build_missing=not config.require_cache,
                               rebuild_stale=not config.require_cache)


def metric_cache_for(token: str, frames: Optional[list[dict]], location: Optional[FrameLocation],
                     config: ScoringConfig, provider: Optional[MetricCacheProvider] = None):
    """The token's metric cache from the run's provider, built from its scene window when the log was read.

    A stored entry is checked against the scene's frames and map file (when the logs hold the token): a stale
    one is rebuilt, or raises StaleMetricCacheError naming what changed with `require_cache`.
    """
    from data_pipelines.scene import Scene

    scene = None
    if frames is not None and location is not None:
        window = scene_window(frames, location.frame_index, config.version, token)
        scene = Scene.from_frame_dicts(window, num_history_frames=NUM_HISTORY_FRAMES)
    return (provider or cache_provider(config)).get(token, scene)


def score_token(token: str, named_poses: Mapping[str, Any], frames: Optional[list[dict]],
                location: Optional[FrameLocation], config: ScoringConfig,
                provider: Optional[MetricCacheProvider] = None) -> TokenResult:
    """Score every named trajectory of one token in one vectorised call (bad poses -> per-name errors)."""
    names = list(named_poses)
    log_name = location.log_name if location else ""
    result = TokenResult(token, log_name, location.timestamp if location else 0, names)
    valid_names, poses = [], []
    for name in names:
        try:
            poses.append(validate_poses(named_poses[name], token=token, name=name)[0])
            valid_names.append(name)
        except TrajectoryError as exc:
            result.row_errors[name] = str(exc)
    try:
        cache = metric_cache_for(token, frames, location, config, provider)
        result.log_name = result.log_name or cache.log_name
        result.timestamp = result.timestamp or int(cache.timepoint_us)
        if valid_names:
            result.table = score_trajectories(cache, np.stack(poses), config.version)
            result.names = valid_names + [n for n in names if n not in valid_names]
    except (DataError, ValueError, KeyError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def _score_log(task: tuple) -> list[TokenResult]:
    """Worker: score the requested tokens of one log (the log is read once)."""
    log_path, items, config = task
    frames = None
    read_error = None
    if log_path is not None:
        try:
            frames = load_log(log_path)
        except LogFileError as exc:
            read_error = str(exc)
    results = []
    provider = cache_provider(config)
    for token, location, named_poses in items:
        if read_error is not None and not config.require_cache:
            results.append(TokenResult(token, location.log_name if location else "", 0, list(named_poses),
                                       error=read_error))
            continue
        try:
            results.append(score_token(token, named_poses, frames, location, config, provider))
        except Exception as exc:  # noqa: BLE001 - one token's failure must not stop the batch
            logger.exception("unexpected failure scoring %s", token)
            results.append(TokenResult(token, location.log_name if location else "", 0, list(named_poses),
                                       error=f"{type(exc).__name__}: {exc}"))
    return results


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_scoring(trajectories: Mapping[str, Any], logs_root: Optional[PathLike], config: ScoringConfig,
                index: Optional[Mapping[str, FrameLocation]] = None,
                unreadable: Optional[dict[Path, str]] = None) -> list[TokenResult]:
    """Score every (token, name) of `trajectories`; tokens are grouped by log and spread over workers."""
    nested = normalise_trajectories(trajectories)
    unreadable = {} if unreadable is None else unreadable  # logs that could not be read (path -> reason)
    if index is None:
        index = index_logs(logs_root, unreadable) if logs_root is not None else {}
    by_log: dict[Optional[Path], list] = {}
    for token, named in nested.items():
        location = index.get(token)
        by_log.setdefault(location.log_path if location else None, []).append((token, location, named))
    tasks = []
    workers = max(1, int(config.num_workers))
    for log_path, items in by_log.items():
        if log_path is None and not config.require_cache:
            continue
        size = max(1, math.ceil(len(items) / max(1, workers if len(by_log) < workers else 1)))
        tasks.extend((log_path, chunk, config) for chunk in _chunks(items, size))
    def not_found(token: str) -> str:
        if unreadable:  # the token may be in a log that could not be read
            return (f"token {token!r} is in none of the readable logs below {logs_root}; {len(unreadable)} "
                    "unreadable: " + "; ".join(unreadable.values()))
        return str(UnknownTokenError(token, f"the logs below {logs_root}"))

    results: list[TokenResult] = [
        TokenResult(token, "", 0, list(named), error=not_found(token))
        for token, _, named in by_log.get(None, [])
    ] if not config.require_cache else []
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            results.extend(_score_log(task))
    else:
        with worker_pool(min(workers, len(tasks))) as pool:
            for chunk in pool.map(_score_log, tasks):
                results.extend(chunk)
    order = {token: i for i, token in enumerate(nested)}
    return sorted(results, key=lambda r: order.get(r.token, len(order)))


# ------------------------------------------------------------------------------------------------ rows


def previous_scenes(results: Sequence[TokenResult]) -> dict[str, str]:
    """token -> the scored token of the same log whose start time is 0 < Δt ≤ 0.55 s earlier (spec §7.10).

    Only original scenes take part (synthetic 17-character tokens are neither paired nor predecessors).
    """
    return {token: previous.token for token, previous in _previous_pairs(results).items()}


def _previous_pairs(results: Sequence[TokenResult]) -> dict[str, PreviousScene]:
    return previous_scene_pairs((r.token, r.log_name, r.timestamp) for r in results
                                if r.table is not None and r.log_name)


def _extended_comfort_values(result: TokenResult, previous: Optional[TokenResult],
                             pair: Optional[PreviousScene]) -> np.ndarray:
    """EC per scored name of `result` (NaN where the previous scene lacks that name)."""
    names = result.names[: len(result.table)]
    if previous is None or previous.table is None:
        return np.full(len(names), np.nan)
    previous_row = {name: i for i, name in enumerate(previous.names[: len(previous.table)])}
    previous_states = [previous.table.simulated_states[previous_row[name]] if name in previous_row else None
                       for name in names]
    return extended_comfort_to_previous(result.table.simulated_states[: len(names)], previous_states, pair)


def results_to_rows(results: Sequence[TokenResult], version: str) -> list[dict[str, Any]]:
    """One row per (token, trajectory) with the official column names, in input order."""
    columns = COLUMNS[version]
    previous = _previous_pairs(results) if version == "v2" else {}
    by_token = {r.token: r for r in results}
    rows: list[dict[str, Any]] = []
    for result in results:
        scored = len(result.table) if result.table is not None else 0
        ec = None
        if version == "v2" and result.table is not None:
            pair = previous.get(result.token)
            ec = _extended_comfort_values(result, by_token.get(pair.token) if pair else None, pair)
            final = epdms_of_table(result.table, ec)
        elif result.table is not None:
            final = result.table.score
        for i, name in enumerate(result.names):
            row: dict[str, Any] = {column: np.nan for column in columns}
            row.update(token=result.token, log_name=result.log_name, trajectory=name, error="")
            if version == "v2":
                row["previous_token"] = previous[result.token].token if result.token in previous else ""
            if result.error is not None:
                row["error"] = result.error
            elif i >= scored:
                row["error"] = result.row_errors.get(name, "not scored")
            else:
                table = result.table
                for metric, values in table.metrics.items():
                    row[metric] = float(values[i])
                row[SCORE_COLUMN] = float(final[i])
                if version == "v2":
                    row[EXTENDED_COMFORT] = float(ec[i])
                    for metric, values in table.raw_metrics.items():
                        row[f"raw_{metric}"] = float(values[i])
                    for metric, value in table.human_metrics.items():
                        row[f"human_{metric}"] = float(value)
            rows.append(row)
    return rows


def score_trajectory_file_rows(trajectories: Mapping[str, Any], logs_root: Optional[PathLike],
                               config: ScoringConfig) -> list[dict[str, Any]]:
    """Convenience: :func:`run_scoring` then :func:`results_to_rows`."""
    return results_to_rows(run_scoring(trajectories, logs_root, config), config.version)


def summarize(rows: Sequence[Mapping[str, Any]], version: str) -> dict[str, Any]:
    """Mean of every numeric column over the scored rows (NaN-skipping), row counts and failures."""
    numeric = [c for c in COLUMNS[version] if c not in ("token", "log_name", "trajectory", "previous_token", "error")]
    scored = [r for r in rows if not r.get("error")]
    means = {}
    for column in numeric:
        values = np.array([r.get(column, np.nan) for r in scored], dtype=np.float64)
        means[column] = float(np.nanmean(values)) if np.any(~np.isnan(values)) else float("nan")
    failures = [(r["token"], r["trajectory"], r["error"]) for r in rows if r.get("error")]
    return {"rows": len(rows), "scored": len(scored), "failed": len(failures), "means": means, "failures": failures}


def write_csv(rows: Sequence[Mapping[str, Any]], path: PathLike, version: str) -> Path:
    """Write rows with the version's columns (NaN / undefined as empty cells)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS[version], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else
                                 (f"{v:.10g}" if isinstance(v, float) else v)) for k, v in row.items()})
    return path


class ScoringService:
    """Score {token: {name: poses}} against logs and maps, in parallel processes, into official rows."""

    def __init__(self, logs_root: Optional[PathLike], config: ScoringConfig):
        self.logs_root = Path(logs_root) if logs_root is not None else None
        self.config = config
        self._index: Optional[dict[str, FrameLocation]] = None
        self.unreadable_logs: dict[Path, str] = {}

    @property
    def index(self) -> dict[str, FrameLocation]:
        if self._index is None:
            self._index = index_logs(self.logs_root, self.unreadable_logs) if self.logs_root is not None else {}
        return self._index

    def score(self, trajectories: Mapping[str, Any]) -> list[dict[str, Any]]:
        results = run_scoring(trajectories, self.logs_root, self.config, index=self.index,
                              unreadable=self.unreadable_logs)
        return results_to_rows(results, self.config.version)


__all__ = [
    "COLUMNS", "FrameLocation", "ScoringConfig", "ScoringService", "TokenResult", "cache_provider", "index_logs", "load_trajectories",
    "metric_cache_for", "normalise_trajectories", "previous_scenes", "results_to_rows", "run_scoring",
    "scene_window", "score_token", "score_trajectory_file_rows", "summarize", "write_csv",
]
