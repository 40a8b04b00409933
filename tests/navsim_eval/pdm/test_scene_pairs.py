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
