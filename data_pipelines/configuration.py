"""Typed dataclass configs from YAML presets plus ``key=value`` overrides.

A config is a (possibly nested, possibly frozen) dataclass. :func:`load_config` starts from its defaults,
applies a YAML preset and then command-line overrides such as ``optim.lr=1e-4`` or ``model.preset=tiny``.
Every value is converted to the declared field type; an unknown key or a value of the wrong type raises a
:class:`ConfigError` that names the key, where it came from and the valid keys.

A preset may start from another preset with a top-level ``base: other.yaml`` (resolved relative to the
preset's folder), so recipes can be chained without copying.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, TypeVar, Union

import yaml

from data_pipelines.errors import DataError, PathLike

T = TypeVar("T")

BASE_KEY = "base"  # top-level YAML key naming a preset this one extends
_TRUE_STRINGS = {"true", "yes", "on", "1"}
_FALSE_STRINGS = {"false", "no", "off", "0"}
_NONE_STRINGS = {"none", "null", "~", ""}


class ConfigError(DataError, ValueError):
    """A config file or override names an unknown key, has a value of the wrong type, or cannot be read."""


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """(inner type, whether None is allowed) for ``Optional[X]`` / ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) != len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return Union[tuple(args)], optional  # type: ignore[return-value]
    return tp, tp is Any


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def convert_value(value: Any, tp: Any, key: str, source: str) -> Any:
    """Convert ``value`` (YAML-parsed) to the annotated type ``tp``; ConfigError names ``key`` on failure."""
    inner, optional = _strip_optional(tp)
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_STRINGS and inner is not str):
        if value is None and optional:
            return None
        if isinstance(value, str) and optional:
            return None
        if inner is Any:
            return value
        raise ConfigError(f"{source}: key {key!r} must be {_type_name(inner)}, got null")
    if inner is Any:
        return value
    origin = typing.get_origin(inner)
    try:
        if origin in (Union, types.UnionType):
            errors = []
            for option in typing.get_args(inner):
                try:
                    return convert_value(value, option, key, source)
                except ConfigError as exc:
                    errors.append(str(exc))
            raise ConfigError(f"{source}: key {key!r}: {value!r} matches none of {_type_name(inner)}")
        if origin is typing.Literal:
            allowed = typing.get_args(inner)
            for option in allowed:
                if value == option or (isinstance(value, str) and str(option) == value):
                    return option
            raise ConfigError(f"{source}: key {key!r} must be one of {list(allowed)}, got {value!r}")
        if origin in (list, Sequence, typing.Sequence) or inner is list:
            (item_tp,) = typing.get_args(inner) or (Any,)
            return [convert_value(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(_as_list(value, key, source))]
        if origin is tuple or inner is tuple:
            args = typing.get_args(inner)
            items = _as_list(value, key, source)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(convert_value(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(items))
            if args and len(args) != len(items):
                raise ConfigError(f"{source}: key {key!r} needs {len(args)} items, got {len(items)}")
            return tuple(
                convert_value(v, args[i] if args else Any, f"{key}[{i}]", source) for i, v in enumerate(items)
            )
        if origin in (dict, Mapping, typing.Mapping) or inner is dict:
            k_tp, v_tp = typing.get_args(inner) or (Any, Any)
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: key {key!r} must be a mapping, got {value!r}")
            return {convert_value(k, k_tp, key, source): convert_value(v, v_tp, f"{key}.{k}", source)
                    for k, v in value.items()}
        if _is_dataclass_type(inner):
            if isinstance(value, inner):
                return value
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: key {key!r} must be a mapping of {_type_name(inner)} fields")
            return _merge_into(inner(), value, key, source)
        if isinstance(inner, type) and issubclass(inner, enum.Enum):
            if isinstance(value, inner):
                return value
            for member in inner:
                if value == member.value or value == member.name or str(value) == str(member.value):
                    return member
            raise ConfigError(
                f"{source}: key {key!r} must be one of {[m.value for m in inner]}, got {value!r}"
            )
        if inner is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, str)) and str(value).strip().lower() in _TRUE_STRINGS | _FALSE_STRINGS:
                return str(value).strip().lower() in _TRUE_STRINGS
            raise ConfigError(f"{source}: key {key!r} must be a boolean, got {value!r}")
        if inner is int:
            if isinstance(value, bool):
                raise ConfigError(f"{source}: key {key!r} must be an integer, got {value!r}")
            if isinstance(value, float) and not value.is_integer():
                raise ConfigError(f"{source}: key {key!r} must be an integer, got {value!r}")
            return int(value)
        if inner is float:
            if isinstance(value, bool):
                raise ConfigError(f"{source}: key {key!r} must be a number, got {value!r}")
            return float(value)
        if inner is str:
            if isinstance(value, (Mapping, list)):
                raise ConfigError(f"{source}: key {key!r} must be a string, got {value!r}")
            return str(value)
        if inner is Path or (isinstance(inner, type) and issubclass(inner, Path)):
            return Path(str(value)).expanduser()
        if isinstance(inner, type):
            return value if isinstance(value, inner) else inner(value)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: key {key!r} must be {_type_name(inner)}, got {value!r} ({exc})") from exc
    return value


def _as_list(value: Any, key: str, source: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):  # "a,b,c" from the command line
        return [yaml.safe_load(v) for v in value.split(",")] if value else []
    return [value]


def _merge_into(instance: T, mapping: Mapping[str, Any], prefix: str, source: str) -> T:
    """A copy of the dataclass ``instance`` with the (nested) ``mapping`` applied; unknown keys raise."""
    cls = type(instance)
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{source}: {prefix or 'the config'} must be a mapping, got {mapping!r}")
    hints = _field_types(cls)
    changes: dict[str, Any] = {}
    for name, value in mapping.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in hints:
            valid = ", ".join(sorted(hints))
            raise ConfigError(f"{source}: unknown key {key!r}; valid keys{' under ' + prefix if prefix else ''}: {valid}")
        tp = hints[name]
        inner, _ = _strip_optional(tp)
        current = getattr(instance, name)
        if _is_dataclass_type(inner) and isinstance(value, Mapping):
            base = current if isinstance(current, inner) else inner()
            changes[name] = _merge_into(base, value, key, source)
        elif typing.get_origin(inner) in (dict, Mapping) and isinstance(value, Mapping) and isinstance(current, Mapping):
            merged = dict(current)
            merged.update(convert_value(value, inner, key, source))
            changes[name] = merged
        else:
            changes[name] = convert_value(value, tp, key, source)
    try:
        return dataclasses.replace(instance, **changes)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{source}: invalid value under {prefix or cls.__name__}: {exc}") from exc


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values are parsed as YAML scalars/flow lists."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-")
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override of {part!r}")
            node = child
        node[parts[-1]] = value
    return nested


def read_yaml_preset(path: PathLike) -> dict[str, Any]:
    """A preset mapping with its ``base:`` chain resolved (the base first, this file's keys on top)."""
    return _read_chain(Path(path), seen=())


def _read_chain(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.expanduser()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    resolved = path.resolve()
    if resolved in seen:
        raise ConfigError(f"config file {path}: 'base' chain loops ({' -> '.join(map(str, seen))})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    base_path = Path(str(base))
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    return _deep_update(_read_chain(base_path, seen + (resolved,)), data)


def _deep_update(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_update(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_config(
    cls: type[T],
    yaml_path: Optional[PathLike] = None,
    overrides: Iterable[str] = (),
    base: Optional[T] = None,
) -> T:
    """Defaults of ``cls`` (or ``base``) <- YAML preset (with its ``base:`` chain) <- ``key=value`` overrides."""
    if not _is_dataclass_type(cls):
        raise TypeError(f"{cls!r} is not a dataclass type")
    config = base if base is not None else cls()
    if yaml_path is not None:
        config = _merge_into(config, read_yaml_preset(yaml_path), "", f"config file {yaml_path}")
    overrides = list(overrides)
    if overrides:
        config = _merge_into(config, parse_overrides(overrides), "", "command-line overrides")
    return config


def apply_overrides(config: T, overrides: Iterable[str]) -> T:
    """A copy of ``config`` with ``key=value`` overrides applied."""
    return _merge_into(config, parse_overrides(overrides), "", "command-line overrides")


def config_from_dict(cls: type[T], mapping: Mapping[str, Any], source: str = "mapping") -> T:
    """Build ``cls`` from a plain nested mapping (e.g. one written by :func:`config_to_dict`)."""
    return _merge_into(cls(), mapping, "", source)


def config_to_dict(config: Any) -> Any:
    """A YAML-safe plain structure (dicts, lists, scalars) of a dataclass config."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {str(k): config_to_dict(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, enum.Enum):
        return config.value
    if isinstance(config, Path):
        return str(config)
    return config


def save_config(config: Any, path: PathLike) -> Path:
    """Write ``config`` as YAML (round-trips through :func:`load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path
