"""Typed dataclass configs from YAML presets plus ``key=value`` overrides.

A config is a (possibly nested, possibly frozen) dataclass. :func:`load_config` starts from its defaults,
applies a YAML preset and then command-line overrides such as ``optim.lr=1e-4`` or ``model.preset=tiny``.
Every value is converted to the declared field type; an unknown key or a value of the wrong type raises a
:class:`ConfigError` that names the key, where it came from and the valid keys.

A preset may start from another preset with a top-level ``base: other.yaml`` (resolved relative to the
preset's folder), so recipes can be chained without copying.

Fields declare their documentation and limits where they are defined, so neither can drift:

* help: the field's trailing comment (``steps: int = 3  # optimizer steps``) or a string right below it;
* range: ``Annotated[int, Range(low=1)]`` (aliases :data:`PositiveInt`, :data:`NonNegativeInt`, ...), checked
  for every value that a preset or an override sets (and for every item of a tuple of numbers); a ranged
  float must be finite, and NaN is refused for every float field.

:func:`parse_command_line` is the one command-line front end of every entry point: ``key=value`` overrides
(``--key value`` and ``--no-flag`` are the same overrides spelled as flags), ``--config FILE`` (or a preset
name), ``--help`` (every key with type, range, default and help) and ``--print-config`` (the resolved config
as a YAML preset, each key commented with its type and help).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import enum
import inspect
import io
import math
import re
import sys
import textwrap
import tokenize
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar, Union

import yaml

from data_pipelines.errors import DataError, PathLike

T = TypeVar("T")

BASE_KEY = "base"  # top-level YAML key naming a preset this one extends
_TRUE_STRINGS = {"true", "yes", "on", "1"}
_FALSE_STRINGS = {"false", "no", "off", "0"}
_NONE_STRINGS = {"none", "null", "~", ""}


class _YamlLoader(yaml.SafeLoader):
    """YAML with only true/false as booleans, so ``two_stage=off`` or ``name: no`` stay strings; a boolean
    key still accepts yes/no/on/off (see :func:`convert_value`)."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse YAML text the way every config file and override value is parsed."""
    return yaml.load(text, Loader=_YamlLoader)


class ConfigError(DataError, ValueError):
    """A config file or override names an unknown key, has a value of the wrong type, or cannot be read.

    ``key`` is the dotted key at fault when one is known.
    """

    def __init__(self, message: str, key: Optional[str] = None):
        super().__init__(message)
        self.key = key


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed interval of a numeric field (or of every item of a tuple/list of numbers)."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False  # the bound itself is excluded
    high_open: bool = False
    finite: bool = True  # refuse inf (NaN is always refused)

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite" if self.finite else "any number"

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and (math.isnan(value) or (self.finite and math.isinf(value))):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


class _Required:
    """Marker of a key that the command line must set: ``method: Annotated[str, REQUIRED] = ""``."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


def missing_required(config: Any) -> list[str]:
    """Top-level keys marked REQUIRED that still hold an empty value."""
    hints = _annotations_with_extras(type(config))
    return [f.name for f in dataclasses.fields(config)
            if typing.get_origin(hints.get(f.name)) is Annotated and REQUIRED in typing.get_args(hints[f.name])[1:]
            and getattr(config, f.name) in (None, "", (), [])]


PositiveInt = Annotated[int, Range(low=1)]
NonNegativeInt = Annotated[int, Range(low=0)]
PositiveFloat = Annotated[float, Range(low=0.0, low_open=True)]
NonNegativeFloat = Annotated[float, Range(low=0.0)]
UnitInterval = Annotated[float, Range(low=0.0, high=1.0)]  # a probability or a fraction
FiniteFloat = Annotated[float, Range()]


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


def type_label(tp: Any) -> str:
    """A short readable name of an annotation: ``int``, ``float | None``, ``tuple[float, ...]``, ``{a,b}``."""
    if typing.get_origin(tp) is Annotated:
        return type_label(typing.get_args(tp)[0])
    inner, optional = _strip_optional(tp)
    if inner is not tp and optional:
        return f"{type_label(inner)} | None"
    origin = typing.get_origin(inner)
    args = typing.get_args(inner)
    if origin is typing.Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    if origin in (Union, types.UnionType):
        return " | ".join(type_label(a) for a in args)
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return "{" + ",".join(str(m.value) for m in inner) + "}"
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else type_label(a) for a in args)}]"
    if inner is Any:
        return "any"
    return _type_name(inner)


def _annotations_with_extras(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _range_of(tp: Any) -> Optional[Range]:
    """The Range declared on an annotation, on its Optional inner type, or on its tuple/list items."""
    if typing.get_origin(tp) is Annotated:
        found = [m for m in typing.get_args(tp)[1:] if isinstance(m, Range)]
        if found:
            return found[0]
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType, tuple, list, Sequence):
        for arg in typing.get_args(tp):
            if arg is not type(None) and arg is not Ellipsis:
                found = _range_of(arg)
                if found is not None:
                    return found
    return None


def field_range(cls: type, name: str) -> Optional[Range]:
    """The declared Range of field ``name`` of dataclass ``cls`` (None: unlimited)."""
    return _range_of(_annotations_with_extras(cls).get(name, Any))


def _check_range(value: Any, allowed: Optional[Range], key: str, source: str) -> None:
    if allowed is None or value is None:
        return
    values = value if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if isinstance(item, (int, float)) and not isinstance(item, bool) and not allowed.contains(item):
            shown = f"{item!r}" if not isinstance(value, (list, tuple)) else f"{item!r} in {list(value)!r}"
            raise ConfigError(f"{source}: key {key!r} must be {allowed.describe()}, got {shown}", key)


def check_ranges(config: Any, prefix: str = "", source: str = "config") -> None:
    """Check every declared Range of a dataclass instance (and its nested sections); ConfigError names the key."""
    for f in dataclasses.fields(config):
        key = f"{prefix}.{f.name}" if prefix else f.name
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_ranges(value, key, source)
        else:
            _check_range(value, field_range(type(config), f.name), key, source)


def field_help(cls: type) -> dict[str, str]:
    """One-line help of each field of dataclass ``cls``, read from its definition.

    The help of a field is its trailing ``# comment`` (all comment lines inside a multi-line field) or a
    string literal right below it; a dataclass-typed field without either gets its class's first docstring line.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_help(klass))
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        inner, _ = _strip_optional(hints.get(f.name, Any))
        if not docs.get(f.name) and _is_dataclass_type(inner):
            docs[f.name] = first_doc_line(inner)
    return docs


def first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().split("\n\n")[0].replace("\n", " ").strip()


def _own_field_help(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (e.g. defined in an interactive session)
        return {}
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    (class_node,) = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)][:1]
    docs: dict[str, str] = {}
    body = class_node.body
    for index, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        lines = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        following = body[index + 1] if index + 1 < len(body) else None
        if not lines and isinstance(following, ast.Expr) and isinstance(getattr(following, "value", None), ast.Constant) \
                and isinstance(following.value.value, str):
            lines = [" ".join(following.value.value.split())]
        docs[node.target.id] = " ".join(line for line in lines if line)
    return docs


def convert_value(value: Any, tp: Any, key: str, source: str) -> Any:
    """Convert ``value`` (YAML-parsed) to the annotated type ``tp``; ConfigError names ``key`` on failure."""
    inner, optional = _strip_optional(tp)
    if inner is object:
        inner = Any
    if isinstance(value, OverrideText):
        value = _resolve_text(value, inner, optional)
    if isinstance(value, str) and not value.strip() and (
            typing.get_origin(inner) in (list, tuple, Sequence) or inner in (list, tuple)):
        value = []  # "baselines=" (or --baselines '') is the empty list
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_STRINGS and inner is not str):
        if value is None and optional:
            return None
        if isinstance(value, str) and optional:
            return None
        if inner is Any:
            return value
        raise ConfigError(f"{source}: key {key!r} must be {_type_name(inner)}, got null", key)
    if inner is Any:
        return _parsed_texts(value)
    origin = typing.get_origin(inner)
    try:
        if origin in (Union, types.UnionType):
            errors = []
            for option in typing.get_args(inner):
                try:
                    return convert_value(value, option, key, source)
                except ConfigError as exc:
                    errors.append(str(exc))
            raise ConfigError(f"{source}: key {key!r}: {value!r} matches none of {_type_name(inner)}", key)
        if origin is typing.Literal:
            allowed = typing.get_args(inner)
            for option in allowed:
                if value == option or (isinstance(value, str) and str(option) == value):
                    return option
            raise ConfigError(f"{source}: key {key!r} must be one of {list(allowed)}, got {value!r}", key)
        if origin in (list, Sequence, typing.Sequence) or inner is list:
            (item_tp,) = typing.get_args(inner) or (Any,)
            return [convert_value(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(_as_list(value, key, source))]
        if origin is tuple or inner is tuple:
            args = typing.get_args(inner)
            items = _as_list(value, key, source)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(convert_value(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(items))
            if args and len(args) != len(items):
                raise ConfigError(f"{source}: key {key!r} needs {len(args)} items, got {len(items)}", key)
            return tuple(
                convert_value(v, args[i] if args else Any, f"{key}[{i}]", source) for i, v in enumerate(items)
            )
        if origin in (dict, Mapping, typing.Mapping) or inner is dict:
            k_tp, v_tp = typing.get_args(inner) or (Any, Any)
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: key {key!r} must be a mapping, got {value!r}", key)
            return {convert_value(k, k_tp, key, source): convert_value(v, v_tp, f"{key}.{k}", source)
                    for k, v in value.items()}
        if _is_dataclass_type(inner):
            if isinstance(value, inner):
                return value
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: key {key!r} must be a mapping of {_type_name(inner)} fields", key)
            return _merge_into(inner(), value, key, source)
        if isinstance(inner, type) and issubclass(inner, enum.Enum):
            if isinstance(value, inner):
                return value
            for member in inner:
                if value == member.value or value == member.name or str(value) == str(member.value):
                    return member
            raise ConfigError(f"{source}: key {key!r} must be one of {[m.value for m in inner]}, got {value!r}", key)
        if inner is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, str)) and str(value).strip().lower() in _TRUE_STRINGS | _FALSE_STRINGS:
                return str(value).strip().lower() in _TRUE_STRINGS
            raise ConfigError(f"{source}: key {key!r} must be a boolean, got {value!r}", key)
        if inner is int:
            if isinstance(value, bool):
                raise ConfigError(f"{source}: key {key!r} must be an integer, got {value!r}", key)
            if isinstance(value, float) and not value.is_integer():
                raise ConfigError(f"{source}: key {key!r} must be an integer, got {value!r}", key)
            return int(value)
        if inner is float:
            if isinstance(value, bool):
                raise ConfigError(f"{source}: key {key!r} must be a number, got {value!r}", key)
            number = float(value)
            if math.isnan(number):
                raise ConfigError(f"{source}: key {key!r} must be a number, got NaN", key)
            return number
        if inner is str:
            if isinstance(value, (Mapping, list)):
                raise ConfigError(f"{source}: key {key!r} must be a string, got {value!r}", key)
            return str(value)
        if inner is Path or (isinstance(inner, type) and issubclass(inner, Path)):
            return Path(str(value)).expanduser()
        if isinstance(inner, type):
            return value if isinstance(value, inner) else inner(value)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: key {key!r} must be {_type_name(inner)}, got {value!r} ({exc})", key) from exc
    return value


def _as_list(value: Any, key: str, source: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):  # "a,b,c" from the command line
        return [load_yaml(v) for v in value.split(",")] if value else []
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
            close = difflib.get_close_matches(str(name), list(hints), n=1)
            hint = f" (did you mean {prefix + '.' if prefix else ''}{close[0]}?)" if close else ""
            raise ConfigError(
                f"{source}: unknown key {key!r}{hint}; valid keys{' under ' + prefix if prefix else ''}: {valid}", key)
        tp = hints[name]
        inner, _ = _strip_optional(tp)
        current = getattr(instance, name)
        if _is_dataclass_type(inner) and isinstance(value, Mapping):
            base = current if isinstance(current, inner) else inner()
            changes[name] = _merge_into(base, value, key, source)
        elif typing.get_origin(inner) in (dict, Mapping) and isinstance(value, Mapping) and isinstance(current, Mapping):
            # key by key at every depth: ``model.overrides.head.dropout=0.1`` keeps the other head settings
            changes[name] = deep_update(current, convert_value(value, inner, key, source))
        else:
            changes[name] = convert_value(value, tp, key, source)
            _check_range(changes[name], field_range(cls, name), key, source)
    try:
        return dataclasses.replace(instance, **changes)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{source}: invalid value under {prefix or cls.__name__}: {exc}") from exc


class OverrideText(str):
    """The text of a command-line value, parsed only once its target type is known: a ``str``/``Path``/``Literal``
    key keeps the text as typed (``split=1.10``, ``authors="#1 team"``), any other key reads it as YAML."""

    def parsed(self) -> Any:
        if not self.strip():
            return ""
        try:
            return load_yaml(self)
        except yaml.YAMLError:
            return str(self)


_NULL_TEXTS = {"null", "Null", "NULL", "~", ""}


def _parsed_texts(value: Any) -> Any:
    """``value`` with every OverrideText inside (nested mappings and lists) read as YAML (untyped keys)."""
    if isinstance(value, OverrideText):
        return value.parsed()
    if isinstance(value, Mapping):
        return {k: _parsed_texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_parsed_texts(v) for v in value]
    return value


def _resolve_text(value: OverrideText, inner: Any, optional: bool) -> Any:
    keeps_text = inner is str or inner is Path or (isinstance(inner, type) and issubclass(inner, (Path, enum.Enum))) \
        or (typing.get_origin(inner) is typing.Literal and all(isinstance(a, str) for a in typing.get_args(inner)))
    if not keeps_text:
        return value.parsed()
    if optional and value.strip() in _NULL_TEXTS:
        return None
    return str(value)


def parse_overrides(overrides: Iterable[str], keep_text: bool = False) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values are parsed as YAML scalars/flow lists
    (``keep_text``: left as :class:`OverrideText` for :func:`convert_value` to read by the key's type)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value", item)
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-")
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key")
        value = OverrideText(raw) if keep_text else OverrideText(raw).parsed()
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override of {part!r}")
            node = child
        node[parts[-1]] = value
    return nested


class UnknownPresetError(ConfigError, LookupError):
    """A preset name matches no ``<name>.yaml`` in its folder; ``choices`` are the names that do."""

    def __init__(self, name: str, directory: Path, choices: Sequence[str]):
        super().__init__(f"unknown preset {name!r} (no {directory / f'{name}.yaml'}); choose one of {list(choices)}",
                         "preset")
        self.name, self.choices = name, list(choices)


def preset_names(directory: PathLike) -> list[str]:
    """The presets of a folder: the stems of its ``*.yaml`` files, sorted."""
    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def find_preset(directory: PathLike, name: str) -> Path:
    """The YAML file of preset ``name`` in ``directory``; :class:`UnknownPresetError` lists the others."""
    path = Path(directory) / f"{name}.yaml"
    if not path.is_file():
        raise UnknownPresetError(name, Path(directory), preset_names(directory))
    return path


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
        data = load_yaml(path.read_text()) or {}
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
    return deep_update(_read_chain(base_path, seen + (resolved,)), data)


def deep_update(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``top`` merged in, nested mappings merged key by key."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_update(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_config(
    cls: type[T],
    yaml_path: Optional[PathLike] = None,
    overrides: Union[Iterable[str], Mapping[str, Any]] = (),
    base: Optional[T] = None,
) -> T:
    """Defaults of ``cls`` (or ``base``) <- YAML preset (with its ``base:`` chain) <- ``key=value`` overrides
    (or a nested mapping of values)."""
    if not _is_dataclass_type(cls):
        raise TypeError(f"{cls!r} is not a dataclass type")
    config = base if base is not None else cls()
    if yaml_path is not None:
        config = _merge_into(config, read_yaml_preset(yaml_path), "", f"config file {yaml_path}")
    if isinstance(overrides, Mapping) or overrides:
        config = apply_overrides(config, overrides if isinstance(overrides, Mapping) else list(overrides))
    return config


def apply_overrides(config: T, overrides: Union[Iterable[str], Mapping[str, Any]]) -> T:
    """A copy of ``config`` with ``key=value`` overrides (or a nested mapping of values) applied."""
    if isinstance(overrides, Mapping):
        return _merge_into(config, overrides, "", "overrides")
    return _merge_into(config, parse_overrides(overrides, keep_text=True), "", "command-line overrides")


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


# ----------------------------------------------------------------------------------------------- help texts


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(config_to_dict(value), default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _field_rows(cls: type, config: Any, prefix: str = "") -> list[tuple[str, str, str, str, Optional[type]]]:
    """(dotted key, type and range, value, help, section class or None) for every field, depth first."""
    rows = []
    hints = _annotations_with_extras(cls)
    docs = field_help(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = f"{prefix}{f.name}"
        tp = hints.get(f.name, Any)
        value = getattr(config, f.name)
        inner, _ = _strip_optional(typing.get_args(tp)[0] if typing.get_origin(tp) is Annotated else tp)
        if _is_dataclass_type(inner) and dataclasses.is_dataclass(value):
            rows.append((key, "section", "", docs.get(f.name, ""), inner))
            rows += _field_rows(inner, value, key + ".")
            continue
        label = type_label(tp)
        allowed = _range_of(tp)
        if allowed is not None:
            label += f", {allowed.describe()}"
        if typing.get_origin(tp) is Annotated and REQUIRED in typing.get_args(tp)[1:]:
            label += ", required"
        rows.append((key, label, _yaml_scalar(value), docs.get(f.name, ""), None))
    return rows


def describe_keys(config_or_cls: Any) -> str:
    """Every key of a config with its type (and range), default (or current value) and one-line help."""
    config = config_or_cls() if isinstance(config_or_cls, type) else config_or_cls
    lines = []
    for key, label, value, help_text, section in _field_rows(type(config), config):
        if section is not None:
            lines.append(f"  {key}.*  {help_text}")
        else:
            lines.append(f"  {key} ({label}) = {value}" + (f"  {help_text}" if help_text else ""))
    return "\n".join(lines)


def config_to_commented_yaml(config: Any) -> str:
    """``config`` as a YAML preset (loadable with ``--config``), every key commented with its type and help."""
    lines = [f"# {type(config).__name__}: {first_doc_line(type(config))}"]
    for key, label, value, help_text, section in _field_rows(type(config), config):
        depth = key.count(".")
        name = key.rsplit(".", 1)[-1]
        comment = f"{label}; {help_text}" if help_text else label
        if section is not None:
            lines.append(f"{'  ' * depth}{name}:  # {help_text}" if help_text else f"{'  ' * depth}{name}:")
        else:
            lines.append(f"{'  ' * depth}{name}: {value}  # {comment}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- command line

HELP_FLAGS = ("-h", "--help")
PRINT_CONFIG_FLAG = "--print-config"
CONFIG_FLAGS = ("--config", "--preset")  # a YAML preset file, or a preset name where the entry point has presets


@dataclasses.dataclass
class CommandLine:
    """What :func:`parse_command_line` read besides the config itself."""

    switches: dict[str, bool]  # e.g. {"resume": True}
    options: dict[str, Optional[str]]  # e.g. {"out": "data/x"}
    config_file: Optional[Path]


def _field_type_at(cls: type, dotted: str) -> Any:
    """The annotation of a dotted key, or None when the key does not exist."""
    tp: Any = cls
    for part in dotted.split("."):
        inner, _ = _strip_optional(tp)
        if not _is_dataclass_type(inner):
            return None
        hints = _field_types(inner)
        if part not in hints:
            return None
        tp = hints[part]
    return tp


def parse_command_line(
    cls: type[T],
    argv: Optional[Sequence[str]],
    *,
    description: str = "",
    prog: Optional[str] = None,
    switches: Optional[Mapping[str, str]] = None,
    options: Optional[Mapping[str, str]] = None,
    positional: Optional[str] = None,
    preset_dir: Optional[PathLike] = None,
    default_preset: Optional[str] = None,
) -> tuple[T, CommandLine]:
    """The config of an entry point from its command line, in one grammar.

    Tokens, in any order: ``key=value`` (nested keys dotted), ``--key value`` / ``--key=value`` (dashes in
    ``key`` read as underscores), ``--flag`` / ``--no-flag`` for a boolean key, ``--config FILE`` (or the name of
    a preset in ``preset_dir``; ``default_preset`` without the flag), the script's own ``switches`` (``--resume``: help) and value
    ``options`` (``--out DIR``: help), and bare tokens collected into the list field ``positional``.
    ``--help`` prints every key with type, default and help; ``--print-config`` prints the resolved config as
    a commented YAML preset; both then exit 0. Errors raise :class:`ConfigError` naming the token or key.
    """
    switches = dict(switches or {})
    options = dict(options or {})
    tokens = list(sys.argv[1:] if argv is None else argv)
    prog = prog or Path(sys.argv[0]).name
    overrides: list[str] = []
    bare: list[str] = []
    found_switches = {name.lstrip("-").replace("-", "_"): False for name in switches}
    found_options: dict[str, Optional[str]] = {name.lstrip("-").replace("-", "_"): None for name in options}
    config_name: Optional[str] = default_preset
    show_help = print_config = False
    i = 0

    def value_after(flag: str) -> str:
        nonlocal i
        if i + 1 >= len(tokens):
            raise ConfigError(f"{flag} needs a value", flag.lstrip("-"))
        i += 1
        return tokens[i]

    while i < len(tokens):
        token = tokens[i]
        flag, has_value, inline = token.partition("=")
        if token in HELP_FLAGS:
            show_help = True
        elif token == PRINT_CONFIG_FLAG:
            print_config = True
        elif flag in CONFIG_FLAGS:
            config_name = inline if has_value else value_after(flag)
        elif token in switches:
            found_switches[token.lstrip("-").replace("-", "_")] = True
        elif flag in options:
            found_options[flag.lstrip("-").replace("-", "_")] = inline if has_value else value_after(flag)
        elif token.startswith("--") and len(token) > 2:
            key = flag[2:].replace("-", "_")
            if has_value:
                overrides.append(f"{key}={inline}")
            else:
                tp = _field_type_at(cls, key)
                negated = key.removeprefix("no_") if key.startswith("no_") else None
                if tp is None and negated and _strip_optional(_field_type_at(cls, negated) or Any)[0] is bool:
                    overrides.append(f"{negated}=false")
                elif tp is not None and _strip_optional(tp)[0] is bool:
                    overrides.append(f"{key}=true")
                elif tp is None:
                    known = [*HELP_FLAGS[1:], PRINT_CONFIG_FLAG, CONFIG_FLAGS[0], *switches, *options]
                    top_keys = [f.name for f in dataclasses.fields(cls)]
                    close = difflib.get_close_matches(key, top_keys, n=1)
                    hint = f"; did you mean --{close[0].replace('_', '-')}?" if close else ""
                    raise ConfigError(f"command line: {flag!r} is neither a flag ({', '.join(known)}) nor a config "
                                      f"key{hint} (run {prog} --help for the keys)", key)
                else:
                    overrides.append(f"{key}={value_after(flag)}")
        elif "=" in token and not token.startswith("-"):
            overrides.append(token)
        elif positional is not None:
            bare.append(token)
        else:
            raise ConfigError(
                f"command line: {token!r} is not key=value, --key value or a known flag (run {prog} --help)", token)
        i += 1

    if show_help:
        print(command_line_help(cls, prog, description, switches, options, positional, preset_dir is not None,
                                default_preset))
        raise SystemExit(0)
    config_file = None
    if config_name is not None:
        candidate = Path(config_name).expanduser()
        if preset_dir is not None and candidate.suffix not in (".yaml", ".yml") and not candidate.exists():
            try:
                candidate = find_preset(preset_dir, config_name)
            except UnknownPresetError as exc:
                raise ConfigError(f"--config {config_name!r}: no such file, and {exc}", "config") from exc
        config_file = candidate
    config = load_config(cls, config_file, overrides)
    if bare:
        inner, _ = _strip_optional(_field_type_at(cls, positional))
        is_list = typing.get_origin(inner) in (list, tuple, Sequence) or inner in (list, tuple)
        if not is_list and len(bare) > 1:
            raise ConfigError(f"command line: one {positional.upper()} expected, got {bare}", positional)
        config = _merge_into(config, {positional: bare if is_list else bare[0]}, "", "command line")
    missing = missing_required(config)
    if missing and not print_config:
        raise ConfigError(f"command line: missing required key(s) {', '.join(missing)} (run {prog} --help)",
                          missing[0])
    if print_config:
        print(config_to_commented_yaml(config), end="")
        raise SystemExit(0)
    return config, CommandLine(found_switches, found_options, config_file)


def command_line_help(cls: type, prog: str, description: str, switches: Mapping[str, str],
                      options: Mapping[str, str], positional: Optional[str], has_presets: bool,
                      default_preset: Optional[str] = None) -> str:
    """The ``--help`` text: usage, the script's own flags, then every config key (from the dataclass; a run
    without ``--config`` loads ``default_preset`` over these defaults)."""
    flags = [f"[{name}]" for name in switches] + [f"[{name} VALUE]" for name in options]
    usage = f"usage: {prog} [--config {'NAME|' if has_presets else ''}FILE.yaml] {' '.join(flags)} [key=value ...]"
    if positional:
        usage += f" [{positional.upper()} ...]"
    parts = [usage.replace("  ", " ")]
    if description:
        parts.append(description.strip())
    own = {"--config FILE": "YAML preset (keys below; 'base: other.yaml' chains presets)"
           + ("; or a preset name" if has_presets else "")
           + (f"; default {default_preset!r}, which sets some keys below (--print-config shows them)"
              if default_preset else ""),
           "--print-config": "print the resolved config as a YAML preset with types and help, then exit",
           **{name: text for name, text in switches.items()},
           **{f"{name} VALUE": text for name, text in options.items()}}
    parts.append("flags:\n" + "\n".join(f"  {name:<18} {text}" for name, text in own.items()))
    parts.append("keys (key=value, or --key value; --flag / --no-flag for booleans; lists as a,b or [a,b]):\n"
                 + describe_keys(cls))
    return "\n\n".join(parts)


def run_entry_point(main: Callable[[], int]) -> int:
    """``main()``'s exit status; a ConfigError is printed as one ``error:`` line with status 2 (no traceback)."""
    try:
        return main()
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
