"""Scene filters, scene windows and split YAMLs in the devkit's format (spec navsim_data.md §4, §6).

A split YAML names a data split and a scene filter::

    defaults:
      - scene_filter: navtest          # -> <split dir>/scene_filter/navtest.yaml
    data_split: test

The scene-filter YAML is a Hydra-instantiable ``navsim.common.dataclasses.SceneFilter`` (``_target_``,
``_convert_: all``) with the fields of :class:`SceneFilter` and long ``log_names:`` / ``tokens:`` lists. An
inline ``scene_filter:`` mapping in the split YAML is accepted as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import yaml

from data_pipelines.errors import SplitError

PathLike = Union[str, Path]

SCENE_FILTER_TARGET = "navsim.common.dataclasses.SceneFilter"  # spec §6
SCENE_FILTER_DIRNAME = "scene_filter"  # the devkit's config group folder beside the split YAMLs
HYDRA_KEYS = ("_target_", "_convert_")
# v2 (two-stage) scene-filter fields: parsed and kept so v2 split files load, not used for v1 windows (spec §4).
V2_FIELDS = (
    "include_synthetic_scenes",
    "synthetic_scene_tokens",
    "all_mapping",
    "reactive_synthetic_initial_tokens",
    "non_reactive_synthetic_initial_tokens",
)


@dataclass
class SceneFilter:
    """Which windows of which logs become scenes. `frame_interval` None = non-overlapping windows."""

    num_history_frames: int = 4
    num_future_frames: int = 10
    frame_interval: Optional[int] = None
    has_route: bool = True
    max_scenes: Optional[int] = None
    log_names: Optional[list[str]] = None
    tokens: Optional[list[str]] = None
    v2_fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("num_history_frames", "num_future_frames"):
            if not _is_int(getattr(self, name)):
                raise SplitError(f"expected an integer, got {getattr(self, name)!r}", field=name)
        if self.num_history_frames < 1:
            raise SplitError(f"must be >= 1, got {self.num_history_frames}", field="num_history_frames")
        if self.num_future_frames < 0:
            raise SplitError(f"must be >= 0, got {self.num_future_frames}", field="num_future_frames")
        if self.frame_interval is not None and (not _is_int(self.frame_interval) or self.frame_interval < 1):
            raise SplitError(f"must be null or an integer >= 1, got {self.frame_interval!r}", field="frame_interval")
        if self.max_scenes is not None and (not _is_int(self.max_scenes) or self.max_scenes < 1):
            raise SplitError(f"must be null or an integer >= 1, got {self.max_scenes!r}", field="max_scenes")
        if not isinstance(self.has_route, bool):
            raise SplitError(f"expected true or false, got {self.has_route!r}", field="has_route")
        for name in ("log_names", "tokens"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise SplitError(f"expected a list of strings, got {type(value).__name__}", field=name)
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    raise SplitError(
                        f"entry {index} is {item!r} ({type(item).__name__}), expected a string", field=name
                    )
            setattr(self, name, list(value))

    @property
    def num_frames(self) -> int:
        return self.num_history_frames + self.num_future_frames

    @property
    def effective_frame_interval(self) -> int:
        return self.num_frames if self.frame_interval is None else int(self.frame_interval)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Split:
    """A named split: the data folder (`data_split`) and the scene filter selecting its scenes."""

    name: str
    data_split: str
    scene_filter: SceneFilter
    path: Optional[Path] = None


# ------------------------------------------------------------------------------------------ windows


def iter_scene_windows(
    frames: Sequence[dict[str, Any]], scene_filter: SceneFilter
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(scene token, window) pairs of one log, steps 1-4 of the spec §4 algorithm (no max_scenes)."""
    num_frames = scene_filter.num_frames
    current = scene_filter.num_history_frames - 1
    wanted = set(scene_filter.tokens) if scene_filter.tokens is not None else None
    for start in range(0, len(frames), scene_filter.effective_frame_interval):
        window = list(frames[start : start + num_frames])
        if len(window) < num_frames:
            continue
        if scene_filter.has_route and len(window[current]["roadblock_ids"]) == 0:
            continue
        token = window[current]["token"]
        if wanted is not None and token not in wanted:
            continue
        yield token, window


def select_log_names(available: Iterable[str], scene_filter: SceneFilter) -> list[str]:
    """The available log names the filter keeps, in the given order."""
    if scene_filter.log_names is None:
        return list(available)
    wanted = set(scene_filter.log_names)
    return [name for name in available if name in wanted]


# ----------------------------------------------------------------------------------------- YAML I/O


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise SplitError("file does not exist", path=path)
    try:
        with path.open("r", encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise SplitError(f"invalid YAML ({exc})", path=path) from exc
    except UnicodeDecodeError as exc:
        raise SplitError(f"not a text file ({exc})", path=path) from exc


def scene_filter_from_dict(data: Any, path: Optional[PathLike] = None) -> SceneFilter:
    """Build a SceneFilter from a parsed scene-filter mapping; unknown keys raise SplitError naming them."""
    if not isinstance(data, dict):
        raise SplitError(f"expected a mapping of scene-filter fields, got {type(data).__name__}", path=path)
    target = data.get("_target_")
    if target is not None and not str(target).endswith("SceneFilter"):
        raise SplitError(f"expected {SCENE_FILTER_TARGET}, got {target!r}", path=path, field="_target_")
    known = {f.name for f in fields(SceneFilter)} - {"v2_fields"}
    kwargs: dict[str, Any] = {}
    v2: dict[str, Any] = {}
    for key, value in data.items():
        if key in HYDRA_KEYS:
            continue
        if key in V2_FIELDS:
            v2[key] = value
        elif key in known:
            kwargs[key] = value
        else:
            raise SplitError("unknown scene-filter field", path=path, field=str(key))
    try:
        return SceneFilter(**kwargs, v2_fields=v2)
    except SplitError as exc:
        raise SplitError(exc.reason, path=path, field=exc.field) from exc


def load_scene_filter(path: PathLike) -> SceneFilter:
    """Read a scene-filter YAML."""
    path = Path(path)
    return scene_filter_from_dict(_read_yaml(path), path)


def _scene_filter_name(defaults: Any, path: Path) -> Optional[str]:
    if defaults is None:
        return None
    if not isinstance(defaults, list):
        raise SplitError("expected a list", path=path, field="defaults")
    for entry in defaults:
        if isinstance(entry, dict) and SCENE_FILTER_DIRNAME in entry:
            name = entry[SCENE_FILTER_DIRNAME]
            if not isinstance(name, str) or not name:
                raise SplitError(f"expected a scene-filter name, got {name!r}", path=path, field="defaults")
            return name
    return None


def load_split(path: PathLike) -> Split:
    """Read a split YAML (devkit format) and the scene-filter YAML it names."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise SplitError(f"expected a mapping with data_split and scene_filter, got {type(data).__name__}", path=path)
    if "_target_" in data and "data_split" not in data:
        raise SplitError("this is a scene-filter file, not a split file (no data_split)", path=path)
    data_split = data.get("data_split")
    if not isinstance(data_split, str) or not data_split:
        raise SplitError(f"expected the name of a data folder, got {data_split!r}", path=path, field="data_split")
    unknown = set(data) - {"defaults", "data_split", SCENE_FILTER_DIRNAME}
    if unknown:
        raise SplitError("unknown split field", path=path, field=sorted(unknown)[0])
    filter_name = _scene_filter_name(data.get("defaults"), path)
    inline = data.get(SCENE_FILTER_DIRNAME)
    if filter_name is not None and inline is not None:
        raise SplitError("both defaults and an inline scene_filter are given", path=path, field=SCENE_FILTER_DIRNAME)
    if isinstance(inline, str):
        filter_name, inline = inline, None
    if inline is not None:
        scene_filter = scene_filter_from_dict(inline, path)
    elif filter_name is not None:
        scene_filter = load_scene_filter(path.parent / SCENE_FILTER_DIRNAME / f"{filter_name}.yaml")
    else:
        raise SplitError(
            "no scene filter named (defaults: [scene_filter: NAME])", path=path, field=SCENE_FILTER_DIRNAME
        )
    return Split(name=path.stem, data_split=data_split, scene_filter=scene_filter, path=path)


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("...").strip()


def _quoted_list(values: Optional[Sequence[str]]) -> str:
    if values is None:
        return " null\n"
    if len(values) == 0:
        return " []\n"
    return "\n" + "".join(f'  - "{v}"\n' for v in values)


def scene_filter_to_yaml(scene_filter: SceneFilter) -> str:
    """Serialise a SceneFilter in the devkit's layout (strings quoted so hex tokens stay strings)."""
    for name in ("log_names", "tokens"):
        for value in getattr(scene_filter, name) or []:
            if '"' in value or "\\" in value or "\n" in value:
                raise SplitError(f"cannot write entry {value!r}", field=name)
    lines = [
        f"_target_: {SCENE_FILTER_TARGET}",
        "_convert_: 'all'",
        "",
        f"num_history_frames: {scene_filter.num_history_frames}",
        f"num_future_frames: {scene_filter.num_future_frames}",
        f"frame_interval: {_yaml_scalar(scene_filter.frame_interval)}",
        f"has_route: {_yaml_scalar(scene_filter.has_route)}",
        "",
        f"max_scenes: {_yaml_scalar(scene_filter.max_scenes)}",
    ]
    text = "\n".join(lines) + "\n"
    text += "log_names:" + _quoted_list(scene_filter.log_names)
    text += "\ntokens:" + _quoted_list(scene_filter.tokens)
    if scene_filter.v2_fields:
        text += "\n" + yaml.safe_dump(scene_filter.v2_fields, sort_keys=False)
    return text


def write_split_yaml(
    splits_dir: PathLike, name: str, scene_filter: SceneFilter, data_split: str
) -> Path:
    """Write ``<splits_dir>/<name>.yaml`` and ``<splits_dir>/scene_filter/<name>.yaml``; returns the split path."""
    if not name or "/" in name or "\\" in name:
        raise SplitError(f"invalid split name {name!r}", field="name")
    if not data_split:
        raise SplitError("data_split must be a folder name", field="data_split")
    splits_dir = Path(splits_dir)
    filter_path = splits_dir / SCENE_FILTER_DIRNAME / f"{name}.yaml"
    filter_path.parent.mkdir(parents=True, exist_ok=True)
    filter_path.write_text(scene_filter_to_yaml(scene_filter), encoding="utf-8")
    split_path = splits_dir / f"{name}.yaml"
    split_path.write_text(
        f"defaults:\n  - {SCENE_FILTER_DIRNAME}: {name}\n\ndata_split: {_yaml_scalar(data_split)}\n", encoding="utf-8"
    )
    return split_path
