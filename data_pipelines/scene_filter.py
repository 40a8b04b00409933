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

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

import yaml

from data_pipelines.errors import SplitError

PathLike = Union[str, Path]

SCENE_FILTER_TARGET = "navsim.common.dataclasses.SceneFilter"  # spec §6
SCENE_FILTER_DIRNAME = "scene_filter"  # the devkit's config group folder beside the split YAMLs
HYDRA_KEYS = ("_target_", "_convert_")
TOKEN_LIST_FIELDS = (
    "log_names",
    "tokens",
    "synthetic_scene_tokens",
    "reactive_synthetic_initial_tokens",
    "non_reactive_synthetic_initial_tokens",
)
"""SceneFilter fields holding a list of strings (or null), navsim@main ``navsim/common/dataclasses.py``."""
REACTIVE_ALL_MAPPING = "reactive_all_mapping"
"""Split-level list of ``[stage-1 token, previous-frame token, [[stage-2 token, previous stage-2 token], ...]]``
(navhard_two_stage, warmup_two_stage, private_test_hard_two_stage; read by the devkit's ``run_pdm_score``)."""
TWO_STAGE_MAPPING = "two_stage_mapping"
"""Split-level ``{stage-1 token: [stage-2 tokens]}`` (navsafe_two_stage)."""


@dataclass(frozen=True)
class TwoStageLink:
    """A stage-1 scene, the scene of its previous frame (t = -0.5 s) and their stage-2 scenes.

    ``second_stage_pairs`` holds one entry per perturbation: (stage-2 token of the stage-1 scene, stage-2 token
    of the previous frame's scene); either may be absent (a pair of length 1 or 0, as the devkit tolerates).
    """

    first_stage_token: str
    previous_token: Optional[str]
    second_stage_pairs: tuple[tuple[str, ...], ...]

    @property
    def second_stage_tokens(self) -> list[str]:
        return [pair[0] for pair in self.second_stage_pairs if len(pair) > 0]

    @property
    def previous_second_stage_tokens(self) -> list[str]:
        return [pair[1] for pair in self.second_stage_pairs if len(pair) > 1]


@dataclass
class SceneFilter:
    """Which windows of which logs become scenes. `frame_interval` None = non-overlapping windows.

    Fields and defaults are the devkit's (navsim@main). The v2 fields select stage-2 (synthetic) scenes:
    `include_synthetic_scenes`, `synthetic_scene_tokens` (explicit stage-2 tokens), `all_mapping`
    ({(stage-1 token, previous token): [(stage-2 token, previous stage-2 token), ...]}) and the reactive /
    non-reactive stage-2 token lists. Stage-1 windows ignore them.
    """

    num_history_frames: int = 4
    num_future_frames: int = 10
    frame_interval: Optional[int] = None
    has_route: bool = True
    max_scenes: Optional[int] = None
    log_names: Optional[list[str]] = None
    tokens: Optional[list[str]] = None
    include_synthetic_scenes: bool = False
    all_mapping: Optional[dict[tuple[str, str], list[tuple[str, ...]]]] = None
    synthetic_scene_tokens: Optional[list[str]] = None
    reactive_synthetic_initial_tokens: Optional[list[str]] = None
    non_reactive_synthetic_initial_tokens: Optional[list[str]] = None

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
        for name in ("has_route", "include_synthetic_scenes"):
            if not isinstance(getattr(self, name), bool):
                raise SplitError(f"expected true or false, got {getattr(self, name)!r}", field=name)
        for name in TOKEN_LIST_FIELDS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _string_list(value, name))
        if self.all_mapping is not None:
            self.all_mapping = _all_mapping(self.all_mapping)

    @property
    def num_frames(self) -> int:
        return self.num_history_frames + self.num_future_frames

    @property
    def effective_frame_interval(self) -> int:
        return self.num_frames if self.frame_interval is None else int(self.frame_interval)


def _string_list(value: Any, name: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise SplitError(f"expected a list of strings, got {type(value).__name__}", field=name)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise SplitError(f"entry {index} is {item!r} ({type(item).__name__}), expected a string", field=name)
    return list(value)


def _token_tuple(value: Any, name: str, where: str) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise SplitError(f"{where}: expected a list of tokens, got {value!r}", field=name)
    if len(value) > 2 or not all(isinstance(t, str) for t in value):
        raise SplitError(f"{where}: expected at most two token strings, got {value!r}", field=name)
    return tuple(value)


def parse_reactive_all_mapping(value: Any, name: str = REACTIVE_ALL_MAPPING) -> Optional[list[TwoStageLink]]:
    """``[[stage-1 token, previous token, [[stage-2, previous stage-2], ...]], ...]`` -> links (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise SplitError(f"expected a list of [token, previous token, pairs], got {type(value).__name__}", field=name)
    links = []
    for index, entry in enumerate(value):
        where = f"entry {index}"
        if not isinstance(entry, (list, tuple)) or len(entry) != 3:
            raise SplitError(f"{where}: expected [token, previous token, pairs], got {entry!r}", field=name)
        first, previous, pairs = entry
        if not isinstance(first, str) or not (previous is None or isinstance(previous, str)):
            raise SplitError(f"{where}: tokens must be strings, got {first!r}, {previous!r}", field=name)
        if not isinstance(pairs, (list, tuple)):
            raise SplitError(f"{where}: expected a list of stage-2 token pairs, got {pairs!r}", field=name)
        links.append(TwoStageLink(first, previous, tuple(_token_tuple(p, name, where) for p in pairs)))
    return links


def parse_two_stage_mapping(value: Any, name: str = TWO_STAGE_MAPPING) -> Optional[dict[str, list[str]]]:
    """``{stage-1 token: [stage-2 tokens]}`` (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SplitError(f"expected a mapping of stage-1 token -> stage-2 tokens, got {type(value).__name__}",
                         field=name)
    out = {}
    for key, tokens in value.items():
        if not isinstance(key, str):
            raise SplitError(f"key {key!r} is not a token string", field=name)
        out[key] = _string_list(tokens, name)
    return out


def _all_mapping(value: Any) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    """The devkit's ``all_mapping`` dict; a reactive_all_mapping-style list is accepted too (YAML has no tuple keys)."""
    if isinstance(value, dict):
        out = {}
        for key, pairs in value.items():
            key_tuple = _token_tuple(key, "all_mapping", f"key {key!r}")
            if not isinstance(pairs, (list, tuple)):
                raise SplitError(f"key {key!r}: expected a list of token pairs, got {pairs!r}", field="all_mapping")
            out[key_tuple] = [_token_tuple(p, "all_mapping", f"key {key!r}") for p in pairs]
        return out
    links = parse_reactive_all_mapping(value, "all_mapping")
    return {(link.first_stage_token, link.previous_token): list(link.second_stage_pairs) for link in links}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Split:
    """A named split: the data folder (`data_split`), the scene filter selecting its scenes and, for two-stage
    splits, the links from stage-1 scenes to their stage-2 scenes (split-level keys of the devkit's YAMLs)."""

    name: str
    data_split: str
    scene_filter: SceneFilter
    path: Optional[Path] = None
    reactive_all_mapping: Optional[list[TwoStageLink]] = None
    two_stage_mapping: Optional[dict[str, list[str]]] = None

    @property
    def is_two_stage(self) -> bool:
        """True when the split asks for stage-2 (synthetic) scenes."""
        return bool(self.scene_filter.include_synthetic_scenes)

    def stage_two_links(self) -> Optional[list[TwoStageLink]]:
        """Stage-1 -> stage-2 links from `reactive_all_mapping`, `two_stage_mapping` or the filter's `all_mapping`
        (first one given), or None when the split names none."""
        if self.reactive_all_mapping is not None:
            return list(self.reactive_all_mapping)
        if self.two_stage_mapping is not None:
            return [TwoStageLink(first, None, tuple((t,) for t in seconds))
                    for first, seconds in self.two_stage_mapping.items()]
        if self.scene_filter.all_mapping is not None:
            return [TwoStageLink(first, previous, tuple(pairs))
                    for (first, previous), pairs in self.scene_filter.all_mapping.items()]
        return None


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
    known = {f.name for f in fields(SceneFilter)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in HYDRA_KEYS:
            continue
        if key not in known:
            raise SplitError("unknown scene-filter field", path=path, field=str(key))
        kwargs[key] = value
    try:
        return SceneFilter(**kwargs)
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
    unknown = set(data) - {"defaults", "data_split", SCENE_FILTER_DIRNAME, REACTIVE_ALL_MAPPING, TWO_STAGE_MAPPING}
    if unknown:
        raise SplitError("unknown split field", path=path, field=sorted(unknown)[0])
    try:
        reactive = parse_reactive_all_mapping(data.get(REACTIVE_ALL_MAPPING))
        two_stage = parse_two_stage_mapping(data.get(TWO_STAGE_MAPPING))
    except SplitError as exc:
        raise SplitError(exc.reason, path=path, field=exc.field) from exc
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
    return Split(name=path.stem, data_split=data_split, scene_filter=scene_filter, path=path,
                 reactive_all_mapping=reactive, two_stage_mapping=two_stage)


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("...").strip()


def _quoted_list(values: Optional[Sequence[str]]) -> str:
    if values is None:
        return " null\n"
    if len(values) == 0:
        return " []\n"
    return "\n" + "".join(f'  - "{v}"\n' for v in values)


def _check_writable(scene_filter: SceneFilter) -> None:
    for name in TOKEN_LIST_FIELDS:
        for value in getattr(scene_filter, name) or []:
            if '"' in value or "\\" in value or "\n" in value:
                raise SplitError(f"cannot write entry {value!r}", field=name)


def _links_as_lists(links: Sequence[TwoStageLink]) -> list[list[Any]]:
    return [[link.first_stage_token, link.previous_token, [list(p) for p in link.second_stage_pairs]] for link in links]


class _QuotedStringDumper(yaml.SafeDumper):
    """Quotes every string: hex tokens such as ``1e10000000000000`` must stay strings under Hydra's YAML loader."""


_QuotedStringDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
)


def _dump_block(key: str, value: Any) -> str:
    return yaml.dump({key: value}, Dumper=_QuotedStringDumper, sort_keys=False, default_flow_style=False,
                     width=10**9)


def scene_filter_to_yaml(scene_filter: SceneFilter) -> str:
    """Serialise a SceneFilter in the devkit's layout (strings quoted so hex tokens stay strings)."""
    _check_writable(scene_filter)
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
    default = SceneFilter()
    if scene_filter.include_synthetic_scenes != default.include_synthetic_scenes:
        text += f"\ninclude_synthetic_scenes: {_yaml_scalar(scene_filter.include_synthetic_scenes)}\n"
    for name in TOKEN_LIST_FIELDS[2:]:
        if getattr(scene_filter, name) is not None:
            text += f"{name}:" + _quoted_list(getattr(scene_filter, name))
    if scene_filter.all_mapping is not None:
        links = [TwoStageLink(k[0], k[1], tuple(v)) for k, v in scene_filter.all_mapping.items()]
        text += _dump_block("all_mapping", _links_as_lists(links))
    return text


def write_split_yaml(
    splits_dir: PathLike,
    name: str,
    scene_filter: SceneFilter,
    data_split: str,
    *,
    reactive_all_mapping: Optional[Sequence[TwoStageLink]] = None,
    two_stage_mapping: Optional[dict[str, list[str]]] = None,
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
    text = f"defaults:\n  - {SCENE_FILTER_DIRNAME}: {name}\n\ndata_split: {_yaml_scalar(data_split)}\n"
    if reactive_all_mapping is not None:
        text += _dump_block(REACTIVE_ALL_MAPPING, _links_as_lists(reactive_all_mapping))
    if two_stage_mapping is not None:
        text += _dump_block(TWO_STAGE_MAPPING, {k: list(v) for k, v in two_stage_mapping.items()})
    split_path.write_text(text, encoding="utf-8")
    return split_path
