"""Extended-comfort pairing of consecutive scenes (pdm_score.md §7.10), shared by scoring and evaluation."""

from __future__ import annotations

import pytest

from navsim_eval.pdm.scene_pairs import overlap_offset, previous_scenes

SYNTHETIC = "s" * 17  # second-stage token (17 characters)


def test_adjacent_scenes_of_a_log_within_055_s_are_paired():
    scenes = [("c", "L1", 1_050_000), ("a", "L1", 0), ("b", "L1", 500_000), ("d", "L1", 1_650_000),
              ("e", "L2", 550_000), ("f", "L2", 1_100_000), ("g", "L2", 1_100_000)]
    pairs = previous_scenes(scenes)
    assert {token: p.token for token, p in pairs.items()} == {"b": "a", "c": "b", "f": "e"}
    assert pairs["b"].gap_s == pytest.approx(0.5) and pairs["c"].gap_s == pytest.approx(0.55)
    assert pairs["b"].overlap_offset == 5 and overlap_offset(0.45) == 4


def test_synthetic_scenes_are_neither_paired_nor_predecessors():
    pairs = previous_scenes([("a", "L1", 0), (SYNTHETIC, "L1", 250_000), ("b", "L1", 500_000)])
    assert {token: p.token for token, p in pairs.items()} == {"b": "a"}


def _link(first, previous, pairs):
    from data_pipelines.scene_filter import TwoStageLink

    return TwoStageLink(first, previous, tuple(pairs))


def test_two_stage_pairs_follow_the_links_and_share_the_value_with_the_earlier_scene():
    from navsim_eval.pdm.scene_pairs import two_stage_pairs

    links = [_link("a", "p", [("s1", "t1"), ("s2", "t2"), ("s3",)])]
    times = {"a": 1_000_000, "p": 500_000, "s1": 5_000_000, "t1": 4_500_000, "s2": 5_000_000, "t2": 4_400_000,
             "s3": 5_000_000}
    first = two_stage_pairs(links, 1, times.__getitem__)
    assert {t: (p.token, p.gap_s) for t, p in first.previous.items()} == {"a": ("p", pytest.approx(0.5))}
    assert first.followers == {"p": "a"} and first.partner("p") == "a" and first.pair_of("p")[0] == "a"
    second = two_stage_pairs(links, 2, times.__getitem__)
    assert {t: p.token for t, p in second.previous.items()} == {"s1": "t1"}
    assert second.followers == {"t1": "s1"} and second.pair_of("s3") is None
    assert set(second.invalid) == {"s2", "t2"} and "0.600 s apart" in second.invalid["s2"]  # devkit: 0 < gap < 0.55
    assert set(two_stage_pairs(links, 2, times.__getitem__, scenes=["s3"]).previous) == set()


def test_two_stage_pairs_override_log_neighbours_and_unreadable_start_times_are_invalid():
    from navsim_eval.pdm.scene_pairs import ComfortPairs, PreviousScene, two_stage_pairs

    pairs = ComfortPairs(previous={"p": PreviousScene("o", 0.5), "a": PreviousScene("p", 0.5)})
    times = {"a": 1_000_000, "p": 500_000}
    pairs.update(two_stage_pairs([_link("a", "p", [])], 1, times.__getitem__))
    assert pairs.pair_of("p")[0] == "a" and pairs.partner("p") == "a"  # the previous frame takes its link's pair
    broken = two_stage_pairs([_link("a", "q", [])], 1, times.__getitem__)
    assert set(broken.invalid) == {"a", "q"} and "KeyError" in broken.invalid["a"]
