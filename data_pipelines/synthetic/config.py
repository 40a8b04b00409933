"""Typed configuration of the synthetic world generator, its presets and ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from data_pipelines.errors import DataError

LAYOUT_KINDS = ("straight", "junction", "curve", "obstacles", "grid")
"""Road layouts the generator can place (see docs/synthetic_world.md)."""


class SyntheticConfigError(DataError):
    """A generator configuration key is unknown or its value is invalid."""

    def __init__(self, key: str, reason: str):
        self.key = key
        super().__init__(f"synthetic world config, key {key!r}: {reason}")


@dataclass(frozen=True)
class SyntheticWorldConfig:
    """Everything that decides the generated dataset; same config and seed -> byte-identical output."""

    seed: int = 0
    # Map: layout instances per location folder, laid out far apart (instance_spacing_m) in one GPKG.
    instances_per_location: int = 3
    held_out_test_instances: bool = True  # the last instance of every location is used by test logs only
    # Kind of instance i at location j: layout_kinds[(i + j) % len]; junctions twice for more turns.
    layout_kinds: tuple[str, ...] = ("junction", "straight", "junction", "curve", "obstacles")
    instance_spacing_m: float = 3000.0
    # Logs: per layout instance; each log is one simulated drive.
    train_logs_per_instance: int = 3
    val_logs_per_instance: int = 1
    test_logs_per_instance: int = 2
    frames_per_log: int = 30  # at 2 Hz (one frame every 0.5 s)
    agent_density: float = 1.0  # multiplies the number of vehicles, pedestrians, cyclists, static objects
    annotation_radius_m: float = 80.0
    # Expert imperfection.
    speed_noise: float = 0.1  # relative spread of the chosen cruise speed
    lateral_noise_m: float = 0.25  # amplitude of the slowly varying lateral offset in the lane
    lane_change_probability: float = 0.35  # per log, on roads with a same-direction neighbour lane
    # Cameras.
    image_width: int = 256
    image_height: int = 144
    jpeg_quality: int = 90
    rendered_cameras: tuple[str, ...] = ("CAM_L0", "CAM_F0", "CAM_R0")
    texture_resolution_m: float = 0.15  # metres per pixel of the BEV ground texture
    lidar: bool = False  # write a merged lidar sweep (binary PCD) for every logged and stage-2 history frame
    log_locations: tuple[str, ...] = ()  # map locations that get logs (empty: all four; every map is written)
    # Splits and scenes (devkit scene filter: 4 history + 10 future frames).
    num_history_frames: int = 4
    num_future_frames: int = 10
    # Two-stage (NAVSIM v2 pseudo closed loop) data for test logs.
    two_stage: bool = True
    two_stage_scenes_per_log: int = 2
    two_stage_lateral_offsets_m: tuple[float, ...] = (-1.0, 1.0)
    two_stage_longitudinal_offsets_m: tuple[float, ...] = (-2.0, 2.0)
    two_stage_heading_offsets_rad: tuple[float, ...] = (0.0,)
    # Execution.
    num_workers: int = 2

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def frames_per_window(self) -> int:
        return self.num_history_frames + self.num_future_frames


def _validate(cfg: SyntheticWorldConfig) -> None:
    positive_ints = ("instances_per_location", "image_width", "image_height", "num_history_frames", "num_workers")
    for key in positive_ints:
        if getattr(cfg, key) < 1:
            raise SyntheticConfigError(key, f"must be >= 1, got {getattr(cfg, key)}")
    non_negative = ("train_logs_per_instance", "val_logs_per_instance", "test_logs_per_instance",
                    "num_future_frames", "two_stage_scenes_per_log", "speed_noise", "lateral_noise_m",
                    "agent_density")
    for key in non_negative:
        if getattr(cfg, key) < 0:
            raise SyntheticConfigError(key, f"must be >= 0, got {getattr(cfg, key)}")
    # A stage-2 scene starts 8 frames (the 4 s plan) after its stage-1 scene, whose previous frame gets one too.
    minimum = max(20, cfg.frames_per_window + 9)
    if cfg.frames_per_log < minimum:
        raise SyntheticConfigError(
            "frames_per_log", f"must be >= max(20, history + future + 9) = {minimum}, got {cfg.frames_per_log}")
    if not 1 <= cfg.jpeg_quality <= 95:
        raise SyntheticConfigError("jpeg_quality", f"must be in [1, 95], got {cfg.jpeg_quality}")
    if not 0.0 <= cfg.lane_change_probability <= 1.0:
        raise SyntheticConfigError("lane_change_probability", f"must be in [0, 1], got {cfg.lane_change_probability}")
    if cfg.texture_resolution_m <= 0 or cfg.annotation_radius_m <= 0 or cfg.instance_spacing_m < 1000.0:
        bad = "texture_resolution_m" if cfg.texture_resolution_m <= 0 else (
            "annotation_radius_m" if cfg.annotation_radius_m <= 0 else "instance_spacing_m")
        raise SyntheticConfigError(bad, f"invalid value {getattr(cfg, bad)} (instance_spacing_m must be >= 1000)")
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
    if cfg.train_logs_per_instance + cfg.val_logs_per_instance + cfg.test_logs_per_instance == 0:
        raise SyntheticConfigError("train_logs_per_instance", "no logs requested")


PRESETS: dict[str, dict[str, typing.Any]] = {
    # Unit tests: a few seconds.
    "tiny": dict(
        instances_per_location=2, layout_kinds=("straight", "junction"), train_logs_per_instance=1,
        val_logs_per_instance=0, test_logs_per_instance=1, frames_per_log=23, image_width=128, image_height=72,
        texture_resolution_m=0.25, two_stage_scenes_per_log=1, two_stage_lateral_offsets_m=(1.0,),
        two_stage_longitudinal_offsets_m=(0.0,), agent_density=0.7, num_workers=1,
    ),
    # Demo / training.
    "default": dict(),
    # Real-data scale for the data path, map reader, metric cache and scorer: all eight cameras at the
    # OpenScene resolution, lidar sweeps, a city grid town (10 x 10 signalised intersections) per location,
    # two logs in one city (few scenes keep time and size bounded).
    "realistic": dict(
        instances_per_location=1, held_out_test_instances=False, layout_kinds=("grid",),
        log_locations=("us-ma-boston",), train_logs_per_instance=1, val_logs_per_instance=0,
        test_logs_per_instance=1, frames_per_log=23, image_width=1920, image_height=1080,
        rendered_cameras=("CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0"),
        texture_resolution_m=0.25, lidar=True, two_stage_scenes_per_log=1, two_stage_lateral_offsets_m=(1.0,),
        two_stage_longitudinal_offsets_m=(0.0,), num_workers=2,
    ),
}


def _coerce(key: str, text: str, annotation: typing.Any) -> typing.Any:
    """Parse `text` into the field type named by `annotation` (a string under postponed evaluation)."""
    kind = str(annotation)
    try:
        if kind.startswith("tuple"):
            inner = kind[len("tuple["):].split(",")[0].strip()
            items = [s.strip() for s in text.strip("()[] ").split(",") if s.strip()]
            return tuple(_coerce(key, s, inner) for s in items)
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        return text.strip()
    except ValueError:
        raise SyntheticConfigError(key, f"cannot parse {text!r} as {kind}") from None


def build_config(preset: str = "default", overrides: typing.Sequence[str] | dict[str, typing.Any] = ()) -> SyntheticWorldConfig:
    """Preset values updated by `key=value` strings (or a dict); unknown keys raise SyntheticConfigError."""
    if preset not in PRESETS:
        raise SyntheticConfigError("preset", f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values = dict(PRESETS[preset])
    types = {f.name: f.type for f in dataclasses.fields(SyntheticWorldConfig)}
    items = overrides.items() if isinstance(overrides, dict) else [_split_override(o) for o in overrides]
    for key, value in items:
        if key not in types:
            raise SyntheticConfigError(key, f"unknown key; valid keys: {', '.join(sorted(types))}")
        values[key] = _coerce(key, value, types[key]) if isinstance(value, str) else value
    return SyntheticWorldConfig(**values)


def _split_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise SyntheticConfigError(text, "override must look like key=value")
    key, value = text.split("=", 1)
    return key.strip(), value
