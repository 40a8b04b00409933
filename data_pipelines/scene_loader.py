"""SceneLoader: the scenes of a split, keyed by token, built lazily from OpenScene logs (spec §4, §5)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from data_pipelines.errors import LogFileError, SensorFileError, SplitError, UnknownTokenError
from data_pipelines.log_reader import find_log_files, load_log, log_name_of
from data_pipelines.paths import DataPaths
from data_pipelines.scene import Scene, SensorConfig, build_agent_input, sensor_file_paths
from data_pipelines.scene_filter import SceneFilter, Split, iter_scene_windows, load_split, select_log_names
from data_pipelines.types import AgentInput

PathLike = Union[str, Path]
MapProvider = Callable[[str], Any]
"""Returns the map object of a map location (e.g. ``lambda loc: load_map(maps_root, loc)``)."""

logger = logging.getLogger(__name__)


class SceneLoader:
    """Scene windows of every log in `navsim_log_path` that `scene_filter` selects.

    Logs are read (and validated) once at construction; windows keep references to the frame dicts. Sensors are
    decoded on demand from `sensor_blobs_path` according to `sensor_config`. Log names or tokens that the filter
    lists but the folder lacks are logged and kept in `missing_log_names` / `missing_tokens` (or raise with
    ``strict=True``); a selection without any scene raises :class:`SplitError`.

    ``shard=(index, count)`` keeps every `count`-th selected log starting at `index` (logs in name order), so each
    of `count` ranks reads only its own logs; `max_scenes` then applies per shard and `missing_tokens` is not
    computed (the other shards hold the rest of the filter's tokens).

    A log that cannot be read or fails validation raises :class:`LogFileError`, unless
    ``record_unreadable_logs`` (batch evaluation): then the rest is loaded, the log is kept in `unreadable_logs`
    and its scene tokens (read without validation where the pickle loads, else the filter's tokens that no
    readable log holds) in `unreadable_tokens`; querying such a token raises the log's error.
    """

    def __init__(
        self,
        navsim_log_path: PathLike,
        sensor_blobs_path: Optional[PathLike] = None,
        scene_filter: Optional[SceneFilter] = None,
        sensor_config: Optional[SensorConfig] = None,
        *,
        map_provider: Optional[MapProvider] = None,
        strict: bool = False,
        shard: Optional[tuple[int, int]] = None,
        record_unreadable_logs: bool = False,
    ):
        self.navsim_log_path = Path(navsim_log_path)
        self.sensor_blobs_path = Path(sensor_blobs_path) if sensor_blobs_path is not None else None
        self.scene_filter = scene_filter if scene_filter is not None else SceneFilter()
        self.sensor_config = sensor_config if sensor_config is not None else SensorConfig.build_no_sensors()
        self.map_provider = map_provider
        self._windows: dict[str, list[dict[str, Any]]] = {}
        self._log_of_token: dict[str, str] = {}
        self.missing_log_names: list[str] = []
        self.missing_tokens: list[str] = []
        if shard is not None:
            index, count = shard
            if not (isinstance(count, int) and isinstance(index, int) and count >= 1 and 0 <= index < count):
                raise SplitError(f"shard must be (index, count) with 0 <= index < count, got {shard!r}", field="shard")
        self.shard = shard
        self.unreadable_logs: dict[str, LogFileError] = {}
        self._unreadable_tokens: dict[str, tuple[str, LogFileError]] = {}
        self._record_unreadable_logs = record_unreadable_logs
        self._load(strict)

    @classmethod
    def from_split(
        cls,
        split: Union[Split, PathLike],
        data_paths: Optional[DataPaths] = None,
        sensor_config: Optional[SensorConfig] = None,
        **kwargs: Any,
    ) -> "SceneLoader":
        """Loader of a split (a Split or a split YAML path) below a dataset root (default: from the env)."""
        split = split if isinstance(split, Split) else load_split(split)
        data_paths = data_paths or DataPaths.from_env()
        return cls(
            data_paths.navsim_log_path(split.data_split),
            data_paths.sensor_blobs_path(split.data_split),
            split.scene_filter,
            sensor_config,
            **kwargs,
        )

    # ---------------------------------------------------------------------------------- loading

    def _load(self, strict: bool) -> None:
        scene_filter = self.scene_filter
        files = {log_name_of(p): p for p in find_log_files(self.navsim_log_path)}
        selected = select_log_names(files, scene_filter)
        if scene_filter.log_names is not None:
            self.missing_log_names = sorted(set(scene_filter.log_names) - set(files))
        num_selected = len(selected)
        if self.shard is not None:
            selected = sorted(selected)[self.shard[0] :: self.shard[1]]
        limit_reached = False
        for log_name in selected:
            try:
                frames = load_log(files[log_name])
            except LogFileError as error:
                if not self._record_unreadable_logs:
                    raise
                self._record_unreadable(log_name, files[log_name], error)
                continue
            for token, window in iter_scene_windows(frames, scene_filter):
                if token in self._windows:
                    logger.warning("token %s occurs twice (log %s); keeping the later window", token, log_name)
                self._windows[token] = window
                self._log_of_token[token] = log_name
                if scene_filter.max_scenes is not None and len(self._windows) >= scene_filter.max_scenes:
                    limit_reached = True
                    break
            if limit_reached:
                break
        if scene_filter.tokens is not None and not limit_reached and self.shard is None:
            self.missing_tokens = sorted(set(scene_filter.tokens) - set(self._windows) - set(self._unreadable_tokens))
            if self.missing_tokens and self.unreadable_logs:  # they may live in a log that could not be read
                for token in self.missing_tokens:
                    self._unreadable_tokens[token] = ("", LogFileError(
                        self.navsim_log_path, f"scene {token} is in none of the readable logs; unreadable: "
                        + "; ".join(str(e) for e in self.unreadable_logs.values())))
                self.missing_tokens = []
        self._report_missing(strict)
        if not self._windows and not self._unreadable_tokens:
            shard = (f", {len(selected)} of them in shard {self.shard[0]} of {self.shard[1]}"
                     if self.shard is not None else "")
            raise SplitError(
                f"no scenes selected from {self.navsim_log_path} ({len(files)} log files, "
                f"{num_selected} selected by log_names{shard})",
                field="tokens" if scene_filter.tokens is not None else None,
            )

    def _record_unreadable(self, log_name: str, path: Path, error: LogFileError) -> None:
        self.unreadable_logs[log_name] = error
        tokens: list[str] = []
        try:  # which scenes the log holds, read without validation (fails for a corrupt pickle)
            tokens = [token for token, _ in iter_scene_windows(load_log(path, validate=False), self.scene_filter)]
        except Exception:  # noqa: BLE001 - the tokens then come from the filter (see _load)
            tokens = []
        for token in tokens:
            self._unreadable_tokens[str(token)] = (log_name, error)
        logger.warning("unreadable log, its %d scene(s) become errors: %s", len(tokens), error)

    def _report_missing(self, strict: bool) -> None:
        for kind, missing in (("log_names", self.missing_log_names), ("tokens", self.missing_tokens)):
            if not missing:
                continue
            message = f"{len(missing)} of the filter's {kind} are not in {self.navsim_log_path}, e.g. {missing[:3]}"
            if strict:
                raise SplitError(message, field=kind)
            logger.warning(message)

    # ---------------------------------------------------------------------------------- queries

    @property
    def tokens(self) -> list[str]:
        return list(self._windows)

    def __len__(self) -> int:
        return len(self._windows)

    def __contains__(self, token: object) -> bool:
        return token in self._windows

    def __iter__(self) -> Iterator[str]:
        return iter(self._windows)

    def get_tokens_list_per_log(self) -> dict[str, list[str]]:
        per_log: dict[str, list[str]] = {}
        for token, log_name in self._log_of_token.items():
            per_log.setdefault(log_name, []).append(token)
        return per_log

    @property
    def unreadable_tokens(self) -> list[str]:
        """Scene tokens of logs that could not be read (``record_unreadable_logs``)."""
        return list(self._unreadable_tokens)

    def get_log_name(self, token: str) -> str:
        if token in self._unreadable_tokens:
            return self._unreadable_tokens[token][0]
        self._check(token)
        return self._log_of_token[token]

    def get_scene_frame_dicts(self, token: str) -> list[dict[str, Any]]:
        """The raw OpenScene frame dicts of a scene window (not copies)."""
        self._check(token)
        return self._windows[token]

    def get_scene_from_token(
        self, token: str, map_api: Any = None, sensor_config: Optional[SensorConfig] = None
    ) -> Scene:
        """The scene with sensors per `sensor_config` (default: the loader's); the map from `map_api` or the
        loader's `map_provider`."""
        frames = self.get_scene_frame_dicts(token)
        scene = Scene.from_frame_dicts(
            frames,
            self.scene_filter.num_history_frames,
            self.sensor_blobs_path,
            sensor_config if sensor_config is not None else self.sensor_config,
            map_api,
        )
        if scene.map_api is None and self.map_provider is not None:
            scene.map_api = self.map_provider(scene.scene_metadata.map_name)
        return scene

    def get_agent_input_from_token(self, token: str) -> AgentInput:
        """Agent input (float32, history frames only), without building the full scene."""
        return build_agent_input(
            self.get_scene_frame_dicts(token),
            self.scene_filter.num_history_frames,
            self.sensor_blobs_path,
            self.sensor_config,
        )

    def missing_sensor_files(self) -> list[tuple[str, str, Optional[Path]]]:
        """(frame token, sensor, path) of every sensor file the loader's sensor config reads for its scenes'
        history frames that does not exist (path None: the log has no entry for that sensor). Checks paths only."""
        missing = []
        for token in self.tokens:
            for index, frame in enumerate(self._windows[token][: self.scene_filter.num_history_frames]):
                names = self.sensor_config.get_sensors_at_iteration(index)
                for sensor, path in sensor_file_paths(frame, self.sensor_blobs_path, names):
                    if path is None or not path.is_file():
                        missing.append((frame["token"], sensor, path))
        return missing

    def check_sensor_files(self) -> None:
        """Raise :class:`SensorFileError` naming the first missing sensor file (and how many are missing) before
        any work starts; a training run would otherwise find it only when the scene is first batched."""
        missing = self.missing_sensor_files()
        if missing:
            token, sensor, path = missing[0]
            raise SensorFileError(
                path if path is not None else self.sensor_blobs_path or Path("."),
                f"missing ({len(missing)} sensor file(s) of the {len(self)} scenes loaded from "
                f"{self.navsim_log_path} are missing" + ("" if path is not None else "; the log has no entry") + ")",
                token=token, sensor=sensor)

    def _check(self, token: str) -> None:
        if token in self._unreadable_tokens:
            raise self._unreadable_tokens[token][1].with_traceback(None)
        if token not in self._windows:
            raise UnknownTokenError(token, f"the {len(self._windows)} scenes loaded from {self.navsim_log_path}")
