"""Where scenes come from: a split's SceneLoader (stage 1) or two-stage data (stage 2).

A source gives, per token, the agent input (with the cameras the model reads), the logged scene without
sensors (for scoring and the human baseline, map attached) and the log name.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

from data_pipelines.scene import Scene, SensorConfig
from data_pipelines.types import AgentInput

MapProvider = Callable[[str], Any]


class SceneSource(Protocol):
    stage: int

    @property
    def tokens(self) -> list[str]: ...

    def agent_input(self, token: str) -> AgentInput: ...

    def scene(self, token: str) -> Scene: ...

    def log_name(self, token: str) -> str: ...


class LoaderSource:
    """Stage-1 scenes of a split through a ``SceneLoader`` (its sensor config decides the cameras loaded)."""

    stage = 1

    def __init__(self, loader: Any, map_provider: Optional[MapProvider] = None):
        self.loader = loader
        self.map_provider = map_provider if map_provider is not None else getattr(loader, "map_provider", None)

    @property
    def shard(self) -> Optional[tuple[int, int]]:
        """(rank, ranks) when the loader read only that rank's shard of the logs (the runner then keeps all of
        this source's scenes on this rank), else None."""
        return getattr(self.loader, "shard", None)

    @property
    def tokens(self) -> list[str]:
        """The loaded scenes, then those of unreadable logs (each becomes an error row naming its log)."""
        return list(self.loader.tokens) + list(getattr(self.loader, "unreadable_tokens", []))

    def agent_input(self, token: str) -> AgentInput:
        return self.loader.get_agent_input_from_token(token)

    def scene(self, token: str, sensor_config: Optional[SensorConfig] = None) -> Scene:
        """The scene without sensors (or with ``sensor_config``), map attached when a provider is known."""
        scene = Scene.from_frame_dicts(
            self.loader.get_scene_frame_dicts(token),
            self.loader.scene_filter.num_history_frames,
            self.loader.sensor_blobs_path,
            sensor_config if sensor_config is not None else SensorConfig.build_no_sensors(),
        )
        if scene.map_api is None and self.map_provider is not None:
            scene.map_api = self.map_provider(scene.scene_metadata.map_name)
        return scene

    def log_name(self, token: str) -> str:
        return self.loader.get_log_name(token)

    def frame_dicts(self, token: str) -> list[dict]:
        """Raw OpenScene frame dicts of the window (camera calibration for projections)."""
        return self.loader.get_scene_frame_dicts(token)

    def timestamp(self, token: str) -> int:
        """Timestamp [us] of the scene's current frame."""
        return int(self.frame_dicts(token)[self.loader.scene_filter.num_history_frames - 1]["timestamp"])


class TokenSubset:
    """A source restricted to some of its tokens (``max_scenes``, or the stage-1 tokens of a two-stage split)."""

    def __init__(self, source: Any, tokens: list[str]):
        self._source = source
        self._tokens = list(tokens)
        self.stage = source.stage

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    def __getattr__(self, name: str) -> Any:  # agent_input, scene, log_name, frame_dicts, loader ...
        return getattr(self._source, name)


class TwoStageSource:
    """Stage-2 scenes of two-stage data (synthetic scenes that start near stage-1 plan endpoints)."""

    stage = 2

    def __init__(self, data: Any, sensor_config: Optional[SensorConfig] = None,
                 map_provider: Optional[MapProvider] = None, first_stage_tokens: Optional[list[str]] = None):
        self.data = data
        self.sensor_config = sensor_config if sensor_config is not None else SensorConfig.build_no_sensors()
        self.map_provider = map_provider
        firsts = list(data.first_stage_tokens)
        if first_stage_tokens is not None:
            keep = set(first_stage_tokens)
            firsts = [t for t in firsts if t in keep]
        self.first_stage_tokens = firsts
        self._tokens = [t for first in firsts for t in self.second_stage_of(first)]

    def second_stage_of(self, first: str) -> list[str]:
        getter = getattr(self.data, "second_stage_tokens", None)
        if callable(getter):
            return list(getter(first))
        return list(self.data.second_stage[first])

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    @property
    def num_history_frames(self) -> int:
        return int(getattr(self.data, "num_history_frames", 4))

    def frame_dicts(self, token: str) -> list[dict]:
        return self.data.frame_dicts(token)

    def scene(self, token: str, sensor_config: Optional[SensorConfig] = None) -> Scene:
        scene = Scene.from_frame_dicts(self.frame_dicts(token), self.num_history_frames,
                                       getattr(self.data, "sensor_blobs_path", None),
                                       sensor_config if sensor_config is not None else SensorConfig.build_no_sensors())
        if scene.map_api is None and self.map_provider is not None:
            scene.map_api = self.map_provider(scene.scene_metadata.map_name)
        return scene

    def agent_input(self, token: str) -> AgentInput:
        from data_pipelines.scene import build_agent_input

        return build_agent_input(self.frame_dicts(token), self.num_history_frames,
                                 getattr(self.data, "sensor_blobs_path", None), self.sensor_config)

    @property
    def links(self) -> list[Any]:
        """The data's two-stage links (stage-1 scene, its previous frame, their stage-2 scene pairs)."""
        return list(getattr(self.data, "links", []))

    def timestamp(self, token: str) -> int:
        """Timestamp [us] of the scene's current frame (its start time)."""
        return int(self.frame_dicts(token)[self.num_history_frames - 1]["timestamp"])

    def log_name(self, token: str) -> str:
        scene_of = getattr(self.data, "scene", None)
        if callable(scene_of):
            return str(scene_of(token).log_name)
        return str(self.frame_dicts(token)[self.num_history_frames - 1]["log_name"])
