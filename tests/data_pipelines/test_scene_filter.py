"""Scene windows (spec §4 algorithm) and split YAMLs in the devkit format."""

from __future__ import annotations

import copy

import pytest
import yaml

from data_pipelines.errors import SplitError
from data_pipelines.scene_filter import (
    SceneFilter,
    iter_scene_windows,
    load_scene_filter,
    load_split,
    scene_filter_to_yaml,
    select_log_names,
    write_split_yaml,
)

NUM_LOG_FRAMES = 20


@pytest.fixture(scope="module")
def log_frames(golden_logs):
    return next(iter(golden_logs.items()))


def test_interval_one_gives_the_golden_windows(golden_logs, golden_scenes):
    for log_name, frames in golden_logs.items():
        windows = list(iter_scene_windows(frames, SceneFilter(frame_interval=1)))
        expected = golden_scenes["logs"][log_name]
        assert [token for token, _ in windows] == expected["tokens"]
        for (token, window), first in zip(windows, expected["first_frame_index"]):
            assert [f["token"] for f in window] == [f["token"] for f in frames[first : first + 14]]
            assert token == window[3]["token"]


@pytest.mark.parametrize(
    "interval, starts",
    [(None, [0]), (1, list(range(7))), (3, [0, 3, 6]), (5, [0, 5]), (7, [0])],
)
def test_frame_interval(log_frames, interval, starts):
    _, frames = log_frames
    windows = list(iter_scene_windows(frames, SceneFilter(frame_interval=interval)))
    assert [token for token, _ in windows] == [frames[s + 3]["token"] for s in starts]
    assert all(len(w) == 14 for _, w in windows)


def test_window_sizes_follow_history_and_future(log_frames):
    _, frames = log_frames
    windows = list(iter_scene_windows(frames, SceneFilter(num_history_frames=2, num_future_frames=0)))
    assert len(windows) == NUM_LOG_FRAMES // 2
    assert [t for t, _ in windows] == [frames[i + 1]["token"] for i in range(0, NUM_LOG_FRAMES, 2)]


def test_has_route_drops_windows_whose_current_frame_has_no_route(log_frames):
    _, frames = log_frames
    frames = copy.deepcopy(frames)
    frames[4]["roadblock_ids"] = []  # current frame of window 1
    frames[3 + 6]["roadblock_ids"] = []  # current frame of window 6
    frames[0]["roadblock_ids"] = []  # history frame only: no effect
    with_route = [t for t, _ in iter_scene_windows(frames, SceneFilter(frame_interval=1))]
    assert with_route == [frames[s + 3]["token"] for s in (0, 2, 3, 4, 5)]
    without = [t for t, _ in iter_scene_windows(frames, SceneFilter(frame_interval=1, has_route=False))]
    assert len(without) == 7


def test_tokens_filter(log_frames):
    _, frames = log_frames
    wanted = [frames[8]["token"], frames[3]["token"], "not-a-token"]
    selected = [t for t, _ in iter_scene_windows(frames, SceneFilter(frame_interval=1, tokens=wanted))]
    assert selected == [frames[3]["token"], frames[8]["token"]]  # log order, not list order


def test_log_names_filter():
    scene_filter = SceneFilter(log_names=["b", "d"])
    assert select_log_names(["a", "b", "c", "d"], scene_filter) == ["b", "d"]
    assert select_log_names(["a", "b"], SceneFilter()) == ["a", "b"]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_history_frames": 0}, "num_history_frames"),
        ({"num_future_frames": -1}, "num_future_frames"),
        ({"frame_interval": 0}, "frame_interval"),
        ({"max_scenes": 0}, "max_scenes"),
        ({"has_route": "yes"}, "has_route"),
        ({"tokens": "abc"}, "tokens"),
        ({"log_names": ["ok", 5]}, "log_names"),
    ],
)
def test_invalid_filter_fields(kwargs, field):
    with pytest.raises(SplitError) as info:
        SceneFilter(**kwargs)
    assert info.value.field == field


def test_split_yaml_round_trip(tmp_path):
    scene_filter = SceneFilter(
        frame_interval=1,
        has_route=False,
        max_scenes=12,
        log_names=["2021.05.12.22.00.38_veh-35_01008_01518"],
        tokens=["0123456789012345", "1e10000000000000", "abcdef0123456789", "00000000000000001"],
    )
    split_path = write_split_yaml(tmp_path / "splits", "my_split", scene_filter, "trainval")
    assert split_path == tmp_path / "splits" / "my_split.yaml"
    assert (tmp_path / "splits" / "scene_filter" / "my_split.yaml").is_file()
    split = load_split(split_path)
    assert split.name == "my_split" and split.data_split == "trainval" and split.path == split_path
    assert split.scene_filter == scene_filter  # numeric-looking tokens stay strings
    default = load_split(write_split_yaml(tmp_path / "s2", "all", SceneFilter(), "mini"))
    assert default.scene_filter == SceneFilter()


def test_written_yaml_has_the_devkit_layout(tmp_path):
    write_split_yaml(tmp_path, "x", SceneFilter(tokens=["aa"]), "test")
    split_data = yaml.safe_load((tmp_path / "x.yaml").read_text())
    assert split_data == {"defaults": [{"scene_filter": "x"}], "data_split": "test"}
    filter_data = yaml.safe_load((tmp_path / "scene_filter" / "x.yaml").read_text())
    assert filter_data["_target_"] == "navsim.common.dataclasses.SceneFilter"
    assert filter_data["_convert_"] == "all"
    assert filter_data["tokens"] == ["aa"] and filter_data["log_names"] is None
    assert filter_data["frame_interval"] is None and filter_data["has_route"] is True


DEVKIT_FILTER = """_target_: navsim.common.dataclasses.SceneFilter
_convert_: 'all'

num_history_frames: 4 # comment
num_future_frames: 10
frame_interval: 1
has_route: true

max_scenes: null
log_names:
  - "2021.07.24.20.37.45_veh-17_00015_00375"
  - "2021.06.08.12.54.54_veh-26_04262_04732"

tokens:
 - "6774548111cb5ba4"
 - "09b2b571bb63520c"
"""


def test_reads_a_devkit_split(tmp_path):
    (tmp_path / "scene_filter").mkdir()
    (tmp_path / "scene_filter" / "navfoo.yaml").write_text(DEVKIT_FILTER)
    (tmp_path / "navfoo.yaml").write_text("defaults:\n  - scene_filter: navfoo\n\ndata_split: test")
    split = load_split(tmp_path / "navfoo.yaml")
    assert split.data_split == "test"
    assert split.scene_filter.tokens == ["6774548111cb5ba4", "09b2b571bb63520c"]
    assert split.scene_filter.log_names[1] == "2021.06.08.12.54.54_veh-26_04262_04732"
    assert split.scene_filter.frame_interval == 1 and split.scene_filter.max_scenes is None
    assert load_scene_filter(tmp_path / "scene_filter" / "navfoo.yaml") == split.scene_filter


def test_inline_scene_filter_with_v2_fields(tmp_path):
    path = tmp_path / "inline.yaml"
    path.write_text(
        "data_split: synthetic_test\nscene_filter:\n  num_future_frames: 8\n  tokens: ['aa', 'bb']\n"
        "  include_synthetic_scenes: true\n"
    )
    split = load_split(path)
    assert split.scene_filter.num_future_frames == 8 and split.scene_filter.tokens == ["aa", "bb"]
    assert split.scene_filter.include_synthetic_scenes is True and split.is_two_stage
    assert "include_synthetic_scenes: true" in scene_filter_to_yaml(split.scene_filter)


# Built from the layout of navsim@main's train_test_split/{navhard,warmup}_two_stage.yaml: the split file adds
# a split-level reactive_all_mapping; its scene filter adds include_synthetic_scenes and the stage-2 token list.
DEVKIT_TWO_STAGE_SPLIT = """defaults:
- scene_filter: warm
data_split: test
reactive_all_mapping:
- - '4cac9f6cd85a5b47'
  - '2382542e05f253df'
  - - - '5b733b329372ed8c8'
      - 'cc716ed59dd6f0250'
    - - '10933ac8239bd6fbb'
      - 'dedf2ffe66804a16a'
- - 'c054f473288d5515'
  - '68097b10029d5fe1'
  - - - '4d115c250e5dc02b1'
      - '45d88e7f92a4a9e74'
"""
DEVKIT_TWO_STAGE_FILTER = """_target_: navsim.common.dataclasses.SceneFilter
_convert_: all
num_history_frames: 4
num_future_frames: 8
frame_interval: 1
has_route: true
max_scenes: null
include_synthetic_scenes: true
log_names:
- '2021.08.16.14.23.37_veh-45_00015_00132'
tokens:
- '4cac9f6cd85a5b47'
- '2382542e05f253df'
'reactive_synthetic_initial_tokens':
- '5b733b329372ed8c8'
- 'cc716ed59dd6f0250'
"""
# navsafe_two_stage.yaml: a split-level {stage-1 token: [stage-2 tokens]} and explicit synthetic_scene_tokens.
DEVKIT_NAVSAFE_SPLIT = """defaults:
  - scene_filter: safe

data_split: test

two_stage_mapping:
  "01fea9c4f9f45634":
  - "23f7036e1626247d5"
  - "454a297fcfa216471"
"""
DEVKIT_NAVSAFE_FILTER = """
_target_: navsim.common.dataclasses.SceneFilter
_convert_: 'all'

num_history_frames: 4
num_future_frames: 16
frame_interval: 1
has_route: true

max_scenes: null
log_names:
  - "2021.06.08.12.54.54_veh-26_04262_04732"

tokens:
  - "01fea9c4f9f45634"

include_synthetic_scenes: true
synthetic_scene_tokens:
  - "23f7036e1626247d5"
  - "454a297fcfa216471"
"""
# competition_private_tokens.yaml spells booleans and nulls with capitals and has no frame_interval.
DEVKIT_PRIVATE_FILTER = """_target_: navsim.common.dataclasses.SceneFilter
_convert_: 'all'

num_history_frames: 4
num_future_frames: 10
has_route: False

max_scenes: Null
log_names: Null

tokens:
  - "0a1b2c3d4e5f6a7b"
"""


def _write_devkit_split(root, name, split_text, filter_text):
    (root / "scene_filter").mkdir(exist_ok=True)
    (root / "scene_filter" / f"{name}.yaml").write_text(filter_text)
    (root / f"{name}.yaml").write_text(split_text)
    return root / f"{name}.yaml"


def test_reads_devkit_two_stage_splits(tmp_path):
    split = load_split(_write_devkit_split(tmp_path, "warm", DEVKIT_TWO_STAGE_SPLIT, DEVKIT_TWO_STAGE_FILTER))
    assert split.is_two_stage and split.scene_filter.num_future_frames == 8
    assert split.scene_filter.reactive_synthetic_initial_tokens == ["5b733b329372ed8c8", "cc716ed59dd6f0250"]
    links = split.stage_two_links()
    assert [link.first_stage_token for link in links] == ["4cac9f6cd85a5b47", "c054f473288d5515"]
    assert links[0].previous_token == "2382542e05f253df"
    assert links[0].second_stage_tokens == ["5b733b329372ed8c8", "10933ac8239bd6fbb"]
    assert links[0].previous_second_stage_tokens == ["cc716ed59dd6f0250", "dedf2ffe66804a16a"]

    safe = load_split(_write_devkit_split(tmp_path, "safe", DEVKIT_NAVSAFE_SPLIT, DEVKIT_NAVSAFE_FILTER))
    assert safe.two_stage_mapping == {"01fea9c4f9f45634": ["23f7036e1626247d5", "454a297fcfa216471"]}
    (link,) = safe.stage_two_links()
    assert link.previous_token is None and link.second_stage_tokens == ["23f7036e1626247d5", "454a297fcfa216471"]
    assert safe.scene_filter.synthetic_scene_tokens == link.second_stage_tokens

    (tmp_path / "scene_filter" / "private.yaml").write_text(DEVKIT_PRIVATE_FILTER)
    private = load_scene_filter(tmp_path / "scene_filter" / "private.yaml")
    assert private.has_route is False and private.log_names is None and private.frame_interval is None


def test_two_stage_split_round_trip(tmp_path):
    source = load_split(_write_devkit_split(tmp_path, "warm", DEVKIT_TWO_STAGE_SPLIT, DEVKIT_TWO_STAGE_FILTER))
    out = write_split_yaml(tmp_path / "out", "warm", source.scene_filter, "test",
                           reactive_all_mapping=source.reactive_all_mapping)
    again = load_split(out)
    assert again.scene_filter == source.scene_filter
    assert again.reactive_all_mapping == source.reactive_all_mapping
    with_all_mapping = SceneFilter(include_synthetic_scenes=True, all_mapping={("1e10000000000000", "b"): [("c", "d")]})
    path = write_split_yaml(tmp_path / "out", "am", with_all_mapping, "test", two_stage_mapping={"a": ["x", "y"]})
    read = load_split(path)
    assert read.scene_filter.all_mapping == {("1e10000000000000", "b"): [("c", "d")]}
    assert read.two_stage_mapping == {"a": ["x", "y"]}
    assert "'1e10000000000000'" in (tmp_path / "out" / "scene_filter" / "am.yaml").read_text()  # stays a string


@pytest.mark.parametrize(
    "split_text, filter_text, match, field",
    [
        ("data_split: [oops", None, "invalid YAML", None),
        ("- a\n- b\n", None, "expected a mapping", None),
        ("defaults:\n  - scene_filter: f\n", "num_history_frames: 4\n", "name of a data folder", "data_split"),
        ("data_split: test\n", None, "no scene filter named", "scene_filter"),
        ("defaults:\n  - scene_filter: f\ndata_split: test\n", None, "does not exist", None),
        ("defaults:\n  - scene_filter: f\ndata_split: test\n", "num_history_frames: 4\nwindow: 3\n",
         "unknown scene-filter field", "window"),
        ("defaults:\n  - scene_filter: f\ndata_split: test\n", "tokens:\n  - 1234\n", "entry 0", "tokens"),
        ("defaults:\n  - scene_filter: f\ndata_split: test\n", "frame_interval: -2\n", "frame_interval",
         "frame_interval"),
        ("defaults:\n  - scene_filter: f\ndata_split: test\n", "_target_: some.Other\n", "SceneFilter", "_target_"),
        ("data_split: test\nextra: 1\n", None, "unknown split field", "extra"),
        ("defaults:\n  - scene_filter: f\ndata_split: test\nreactive_all_mapping:\n- ['a', 'b']\n", "tokens: []\n",
         "entry 0", "reactive_all_mapping"),
        ("defaults:\n  - scene_filter: f\ndata_split: test\ntwo_stage_mapping: [a]\n", "tokens: []\n",
         "expected a mapping", "two_stage_mapping"),
        ("defaults:\n  - scene_filter: f\ndata_split: test\n", "include_synthetic_scenes: 1\n", "true or false",
         "include_synthetic_scenes"),
        ("defaults:\n  - scene_filter: f\ndata_split: test\n", "synthetic_scene_tokens: [12]\n", "entry 0",
         "synthetic_scene_tokens"),
    ],
    ids=["bad-yaml", "not-mapping", "no-data-split", "no-filter", "filter-file-missing", "unknown-field",
         "non-string-token", "bad-interval", "wrong-target", "unknown-split-field", "bad-reactive-mapping",
         "bad-two-stage-mapping", "bad-include-synthetic", "bad-synthetic-tokens"],
)
def test_split_yaml_errors(tmp_path, split_text, filter_text, match, field):
    (tmp_path / "s.yaml").write_text(split_text)
    if filter_text is not None:
        (tmp_path / "scene_filter").mkdir()
        (tmp_path / "scene_filter" / "f.yaml").write_text(filter_text)
    with pytest.raises(SplitError, match=match) as info:
        load_split(tmp_path / "s.yaml")
    assert info.value.field == field
    assert info.value.path is not None and info.value.path.name in ("s.yaml", "f.yaml")


def test_missing_split_file(tmp_path):
    with pytest.raises(SplitError, match="does not exist"):
        load_split(tmp_path / "nope.yaml")
