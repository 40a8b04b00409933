"""Typed configuration of the synthetic world generator; presets are the YAML files in ``presets/``."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from data_pipelines.configuration import (
    ConfigError, FiniteFloat, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range, UnitInterval,
    UnknownPresetError, check_ranges, find_preset, load_config, preset_names,
)

LAYOUT_KINDS = ("straight", "junction", "curve", "obstacles", "grid")
"""Road layouts the generator can place (see docs/synthetic_world.md)."""

PRESET_DIR = Path(__file__).resolve().parent / "presets"
MIN_INSTANCE_SPACING_M = 1000.0  # layout instances farther apart than any route, so their maps never overlap
MAX_JPEG_QUALITY = 95  # Pillow's documented useful maximum


class SyntheticConfigError(ConfigError):
    """A generator configuration key is unknown or its value is invalid."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"synthetic world config, key {key!r}: {reason}", key)


@dataclass(frozen=True)
class SyntheticWorldConfig:
    """Everything that decides the generated dataset; same config and seed -> byte-identical output."""

    seed: NonNegativeInt = 0  # seed of every random choice (layouts, drives, agents)
    # Map: layout instances per location folder, laid out far apart (instance_spacing_m) in one GPKG.
    instances_per_location: PositiveInt = 3  # layout instances per map location
    held_out_test_instances: bool = True  # the last instance of every location is used by test logs only
    held_out_val_instances: bool = False  # the instance before the last one holds only synthetic_val_maps logs (unseen maps)
    # More training maps without touching any other drive: instances after the others, train logs only.
    training_only_instances: NonNegativeInt = 0  # extra layout instances per location used by training logs only
    # Kind of instance i at location j: layout_kinds[(i + j) % len]; junctions twice for more turns.
    layout_kinds: tuple[str, ...] = ("junction", "straight", "junction", "curve", "obstacles")  # cycled over instances
    instance_spacing_m: Annotated[float, Range(low=MIN_INSTANCE_SPACING_M)] = 3000.0  # distance between instances
    # Logs: per layout instance; each log is one simulated drive.
    train_logs_per_instance: NonNegativeInt = 3  # drives per instance in the train split
    val_logs_per_instance: NonNegativeInt = 1  # drives per instance in the val split
    # 6 test drives per held-out instance (24 logs, 408 scenes): 2 (136 scenes) were a sample small enough to
    # mislead benchmark figures in both directions (docs/experiments.md, "Three times the test drives")
    test_logs_per_instance: NonNegativeInt = 6  # drives per held-out instance in the test split
    frames_per_log: PositiveInt = 30  # at 2 Hz (one frame every 0.5 s)
    agent_density: NonNegativeFloat = 1.0  # multiplies the number of vehicles, pedestrians, cyclists, static objects
    annotation_radius_m: PositiveFloat = 80.0  # boxes annotated within this distance of the ego
    # Expert imperfection.
    speed_noise: NonNegativeFloat = 0.1  # relative spread of the chosen cruise speed
    lateral_noise_m: NonNegativeFloat = 0.25  # amplitude of the slowly varying lateral offset in the lane
    lane_change_probability: UnitInterval = 0.35  # per log, on roads with a same-direction neighbour lane
    # Cameras.
    image_width: PositiveInt = 256  # camera image width in pixels
    image_height: PositiveInt = 144  # camera image height in pixels
    jpeg_quality: Annotated[int, Range(low=1, high=MAX_JPEG_QUALITY)] = 90  # JPEG quality of the images
    rendered_cameras: tuple[str, ...] = ("CAM_L0", "CAM_F0", "CAM_R0")  # cameras with images (others: no file)
    texture_resolution_m: PositiveFloat = 0.15  # metres per pixel of the BEV ground texture
    lidar: bool = False  # write a merged lidar sweep (binary PCD) for every logged and stage-2 history frame
    log_locations: tuple[str, ...] = ()  # map locations that get logs (empty: all four; every map is written)
    # Splits and scenes (devkit scene filter: 4 history + 10 future frames).
    num_history_frames: PositiveInt = 4  # scene window: frames up to and including the current one
    num_future_frames: NonNegativeInt = 10  # scene window: frames after the current one
    # Two-stage (NAVSIM v2 pseudo closed loop) data for test logs.
    two_stage: bool = True  # write stage-2 scenes for the test logs
    two_stage_scenes_per_log: NonNegativeInt = 2  # stage-1 frames per test log that get stage-2 scenes
    two_stage_lateral_offsets_m: tuple[FiniteFloat, ...] = (-1.0, 1.0)  # stage-2 start offsets to the left (+)
    two_stage_longitudinal_offsets_m: tuple[FiniteFloat, ...] = (-2.0, 2.0)  # stage-2 start offsets ahead (+)
    two_stage_heading_offsets_rad: tuple[FiniteFloat, ...] = (0.0,)  # stage-2 start heading offsets
    # Execution.
    num_workers: PositiveInt = 2  # worker processes (output does not depend on it)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def frames_per_window(self) -> int:
        return self.num_history_frames + self.num_future_frames


def _validate(cfg: SyntheticWorldConfig) -> None:
    """The declared ranges, then the rules that tie several keys together."""
    check_ranges(cfg, source="synthetic world config")
    # A stage-2 scene starts 8 frames (the 4 s plan) after its stage-1 scene, whose previous frame gets one too.
    minimum = max(20, cfg.frames_per_window + 9)
    if cfg.frames_per_log < minimum:
        raise SyntheticConfigError(
            "frames_per_log", f"must be >= max(20, history + future + 9) = {minimum}, got {cfg.frames_per_log}")
    if not cfg.layout_kinds or any(k not in LAYOUT_KINDS for k in cfg.layout_kinds):
        raise SyntheticConfigError("layout_kinds", f"must be a non-empty subset of {LAYOUT_KINDS}, got {cfg.layout_kinds}")
    from data_pipelines.types import CAMERA_NAMES

    if not cfg.rendered_cameras or any(c not in CAMERA_NAMES for c in cfg.rendered_cameras):
        raise SyntheticConfigError("rendered_cameras", f"must be a non-empty subset of {CAMERA_NAMES}")
    from data_pipelines.maps.locations import MAP_LOCATIONS

    unknown = [loc for loc in cfg.log_locations if loc not in MAP_LOCATIONS]
    if unknown:
        raise SyntheticConfigError("log_locations", f"unknown location(s) {unknown}; choose from {MAP_LOCATIONS}")
    if cfg.held_out_test_instances and cfg.instances_per_location < 2:
        raise SyntheticConfigError("instances_per_location", "must be >= 2 when held_out_test_instances is true")
    if cfg.held_out_val_instances and not (cfg.held_out_test_instances and cfg.instances_per_location >= 3):
        raise SyntheticConfigError("held_out_val_instances", "needs held_out_test_instances and instances_per_location "
                                                             ">= 3 (training, validation and test instances)")
    if cfg.train_logs_per_instance + cfg.val_logs_per_instance + cfg.test_logs_per_instance == 0:
        raise SyntheticConfigError("train_logs_per_instance", "no logs requested")


def list_presets() -> list[str]:
    """Names of the shipped world presets (``tiny``, ``default``, ``realistic``, ...)."""
    return preset_names(PRESET_DIR)


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``."""
    try:
        return find_preset(PRESET_DIR, name)
    except UnknownPresetError as exc:
        raise SyntheticConfigError("preset", str(exc)) from exc


def build_config(
    preset: str = "default", overrides: typing.Sequence[str] | typing.Mapping[str, typing.Any] = ()
) -> SyntheticWorldConfig:
    """A preset (name or YAML path) updated by ``key=value`` strings or a mapping; errors name the key."""
    path = Path(preset)
    if path.suffix not in (".yaml", ".yml"):
        path = preset_path(preset)
    return load_config(SyntheticWorldConfig, path, overrides)
