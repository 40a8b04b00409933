"""Named model presets: the YAML files in this folder, one per preset (``<name>.yaml``).

Tiny presets (``tiny-*``: random weights, CPU tests, no downloads) and real ones (hub id or local path). A new
backbone preset is one new YAML file here. ``build_config(name, overrides)`` applies overrides given as
``section.key=value`` strings or as a nested mapping (``TrainConfig.model.overrides``); unknown keys raise
:class:`~vla.errors.ModelConfigError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence, Union

from data_pipelines.configuration import (
    ConfigError, UnknownPresetError, deep_update, find_preset, parse_overrides, preset_names, read_yaml_preset,
)
from vla.configuration_dipole import DipoleVLAConfig
from vla.errors import ModelConfigError

PRESET_DIR = Path(__file__).resolve().parent
TINY_PREFIX = "tiny-"  # presets named tiny-* are the random CPU-sized ones


def list_presets() -> list[str]:
    """Names of the shipped presets (tiny ones first)."""
    names = preset_names(PRESET_DIR)
    return [n for n in names if n.startswith(TINY_PREFIX)] + [n for n in names if not n.startswith(TINY_PREFIX)]


TINY_PRESETS = tuple(n for n in list_presets() if n.startswith(TINY_PREFIX))
REAL_PRESETS = tuple(n for n in list_presets() if not n.startswith(TINY_PREFIX))


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``."""
    try:
        return find_preset(PRESET_DIR, name)
    except UnknownPresetError as exc:
        raise ModelConfigError("preset", str(exc)) from exc


def _read_yaml(path: Path) -> dict:
    """A preset file's mapping, read like every config file (``base:`` chains included)."""
    try:
        return read_yaml_preset(path)
    except ConfigError as exc:
        raise ModelConfigError("preset", str(exc)) from exc


def preset_dict(name: str) -> dict:
    """The preset's config sections as a plain dict (what its YAML holds)."""
    return _read_yaml(preset_path(name))


def _nested(overrides: Union[Sequence[str], Mapping[str, Any], None]) -> dict:
    """Overrides as one nested mapping; ``"a.b=1"`` strings and dotted mapping keys become nesting."""
    if not overrides:
        return {}
    if not isinstance(overrides, Mapping):
        try:
            return parse_overrides(overrides)
        except ConfigError as exc:
            raise ModelConfigError(exc.key or "overrides", str(exc)) from exc
    nested: dict = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _nested(value) if isinstance(value, Mapping) else value
    return nested


def build_config(
    name_or_path: Union[str, Path], overrides: Union[Sequence[str], Mapping[str, Any], None] = None
) -> DipoleVLAConfig:
    """DipoleVLAConfig from a preset name or a YAML file, with ``key=value`` strings or a nested mapping on top."""
    path = Path(str(name_or_path))
    if path.suffix in (".yaml", ".yml"):
        values = _read_yaml(path)  # a missing file is refused there, as a ModelConfigError naming it
    else:
        values = preset_dict(str(name_or_path))
    return DipoleVLAConfig(**deep_update(values, _nested(overrides)))

