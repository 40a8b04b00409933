"""The metric table: every name, weight and order the scorer and the front-ends use comes from it."""

from __future__ import annotations

import pytest

from navsim_eval import names
from navsim_eval.evaluation.metrics import TABLE_LAYOUT
from navsim_eval.pdm.constants import V1_WEIGHTS, V2_EC_WEIGHT, V2_WEIGHTS
from navsim_eval.pdm.scorer import METRICS, MULTIPLICATIVE
from navsim_eval.scoring import COLUMNS


def test_names_are_unique_and_round_trip():
    assert len({m.column for m in names.METRIC_TABLE}) == len({m.short for m in names.METRIC_TABLE}) == 10
    for version in names.VERSIONS:
        for metric in names.METRIC_TABLE:
            if version in metric.roles:
                assert names.column_of(metric.short, version) == metric.column
                assert names.short_name(metric.column, version) == metric.short
        assert names.column_of(names.SCORE_SHORT_NAME[version], version) == names.SCORE_COLUMN
    assert names.short_name("score", "v2") == "EPDMS" and names.short_name("not_a_metric", "v1") == "not_a_metric"
    with pytest.raises(KeyError, match="LK"):
        names.column_of("LK", "v1")


def test_roles_and_weights_follow_the_spec():
    """pdm_score.md §8: v1 NC·DAC·(5 EP + 5 TTC + 2 C)/12; v2 NC·DAC·DDC·TLC·(5 EP + 5 TTC + 2 LK + 2 HC [+ 2 EC])."""
    assert MULTIPLICATIVE["v1"] == ("no_at_fault_collisions", "drivable_area_compliance")
    assert MULTIPLICATIVE["v2"] == ("no_at_fault_collisions", "drivable_area_compliance",
                                    "driving_direction_compliance", "traffic_light_compliance")
    assert sum(V1_WEIGHTS.values()) == 12.0 and V1_WEIGHTS["driving_direction_compliance"] == 0.0
    assert sum(V2_WEIGHTS.values()) == 14.0 and V2_EC_WEIGHT == 2.0
    assert "two_frame_extended_comfort" not in METRICS["v2"]  # paired: added by the front-ends


def test_front_ends_use_the_table_order():
    assert METRICS["v1"] == ("no_at_fault_collisions", "drivable_area_compliance", "driving_direction_compliance",
                             "ego_progress", "time_to_collision_within_bound", "comfort")
    assert COLUMNS["v2"][4:14] == [*METRICS["v2"], "two_frame_extended_comfort", "score"]
    assert [short for short, _ in TABLE_LAYOUT["v1"]] == ["NC", "DAC", "TTC", "C", "EP", "PDMS"]
    assert [short for short, _ in TABLE_LAYOUT["v2"]][-2:] == ["EC", "EPDMS"]
