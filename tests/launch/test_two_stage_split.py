"""Two-stage splits in the evaluation sources: the devkit-shaped synthetic split finds its stage-2 folder by name,
and a two-stage split without its stage-2 data is an error, never a silent one-stage run."""

from __future__ import annotations

import pytest

from data_pipelines.scene import SensorConfig
from data_pipelines.scene_filter import load_split
from navsim_eval.evaluation.errors import EvaluationError
from navsim_eval.evaluation.pipeline import EvaluationConfig, build_sources

SPLIT = "synthetic_test_two_stage"


def _config(world, **kwargs):
    return EvaluationConfig(split=SPLIT, data_root=str(world), baselines=(), **kwargs)


def test_two_stage_split_loads_both_stages(world):
    split = load_split(world / "splits" / f"{SPLIT}.yaml")
    first, second = build_sources(_config(world), SensorConfig.build_no_sensors())
    assert set(first.tokens) == set(split.scene_filter.tokens)
    assert set(second.tokens) == set(split.scene_filter.reactive_synthetic_initial_tokens)
    assert set(second.first_stage_tokens) == set(first.tokens)
    assert second.scene(second.tokens[0]).token == second.tokens[0]


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_two_stage_split_without_stage_two_data_is_an_error(world, tmp_path, mode):
    with pytest.raises(EvaluationError, match="does not exist"):
        build_sources(_config(world, two_stage=mode, two_stage_root=str(tmp_path / "absent")),
                      SensorConfig.build_no_sensors())


def test_stage_one_only_when_asked(world, tmp_path):
    sources = build_sources(_config(world, two_stage="off", two_stage_root=str(tmp_path / "absent")),
                            SensorConfig.build_no_sensors())
    assert len(sources) == 1 and sources[0].stage == 1


def test_max_scenes_keeps_a_linked_scene_with_its_previous_frame(world):
    first, second = build_sources(_config(world, max_scenes=3), SensorConfig.build_no_sensors())
    kept = set(first.tokens)
    assert len(kept) in (3, 4) and any(link.first_stage_token in kept for link in second.links)
    assert all((link.first_stage_token in kept) == (link.previous_token in kept) for link in second.links)
    stage_two = set(second.tokens)  # no stage-2 pair is cut in half either
    assert all(len(set(pair) & stage_two) in (0, 2) for link in second.links for pair in link.second_stage_pairs)


def test_each_link_is_one_two_stage_group_with_its_previous_frame(world):
    from navsim_eval.evaluation.pipeline import _two_stage_groups

    _, second = build_sources(_config(world), SensorConfig.build_no_sensors())
    groups = {group.first_stage_token: group for group in _two_stage_groups(second)}
    assert second.links and set(groups) == {link.first_stage_token for link in second.links}
    for link in second.links:
        group = groups[link.first_stage_token]
        assert group.previous_token == link.previous_token is not None
        assert group.second_stage_tokens == tuple(link.second_stage_tokens)
        assert group.previous_second_stage_tokens == tuple(link.previous_second_stage_tokens)
