"""Fidelity of the native scorer on the public goldens (official NAVSIM numbers), both versions.

Metric caches (and the PDM-Closed reference) come from our own builder and planner. Required: the final score
within 1e-3 of the golden one for >= 99.5 % of the (token, trajectory) pairs and every discrete sub-metric equal
for >= 99.5 %. Per-metric match counts are printed (`pytest -s`).
"""

from __future__ import annotations

import numpy as np
import pytest

from navsim_eval.pdm.comfort import extended_comfort
from navsim_eval.pdm.epdms import epdms_of_table
from navsim_eval.pdm.scorer import score_simulated_states, score_trajectories
from navsim_eval.pdm.simulation import simulate
from navsim_eval.pdm.trajectory import submitted_poses_to_reference
from tests.navsim_eval.pdm.scorer_golden import (
    candidate_poses,
    golden_cache,
    golden_rows,
    intermediates,
    scenes_info,
)

DISCRETE = {
    "v1": ("no_at_fault_collisions", "drivable_area_compliance", "driving_direction_compliance",
           "time_to_collision_within_bound", "comfort"),
    "v2": ("no_at_fault_collisions", "drivable_area_compliance", "driving_direction_compliance",
           "traffic_light_compliance", "time_to_collision_within_bound", "lane_keeping", "history_comfort",
           "two_frame_extended_comfort"),
}
SCORE_TOLERANCE = 1e-3
REQUIRED_FRACTION = 0.995
TIGHT_TOLERANCE = 1e-6  # README tolerance for EP and score (reported)


def _score_all(golden_dir, version: str) -> dict[tuple[str, str], dict[str, float]]:
    """Our rows for every golden (token, trajectory), EC paired with the previous scene of the log."""
    ours: dict[tuple[str, str], dict[str, float]] = {}
    for log in scenes_info(golden_dir)["logs"].values():
        previous_states = None
        for token in log["tokens"]:
            names = list(intermediates(golden_dir, token)["trajectory_names"])
            table = score_trajectories(golden_cache(golden_dir, token, version),
                                       candidate_poses(golden_dir, token, names), version)
            if version == "v2":
                ec = (np.full(len(names), np.nan) if previous_states is None
                      else extended_comfort(table.simulated_states, previous_states, 5))
                scores = epdms_of_table(table, ec)
                previous_states = table.simulated_states
            else:
                ec, scores = None, table.score
            for i, name in enumerate(names):
                row = {metric: float(values[i]) for metric, values in table.metrics.items()}
                row["score"] = float(scores[i])
                if ec is not None:
                    row["two_frame_extended_comfort"] = float(ec[i])
                ours[(token, name)] = row
    return ours


def _golden_value(text: str) -> float:
    return float("nan") if text == "" else float(text)


def _same(a: float, b: float, tolerance: float = 0.0) -> bool:
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tolerance


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_matches_official_scores(golden_dir, version):
    golden = golden_rows(golden_dir, version)
    ours = _score_all(golden_dir, version)
    assert set(ours) == set(golden)
    total = len(golden)
    counts = {}
    for metric in DISCRETE[version]:
        counts[metric] = sum(_same(ours[k][metric], _golden_value(r[metric])) for k, r in golden.items())
    counts["ego_progress (1e-6)"] = sum(
        _same(ours[k]["ego_progress"], _golden_value(r["ego_progress"]), TIGHT_TOLERANCE) for k, r in golden.items())
    counts["score (1e-6)"] = sum(
        _same(ours[k]["score"], _golden_value(r["score"]), TIGHT_TOLERANCE) for k, r in golden.items())
    within = sum(_same(ours[k]["score"], _golden_value(r["score"]), SCORE_TOLERANCE) for k, r in golden.items())
    print(f"\n{version}: {total} rows; score within 1e-3: {within}; " +
          ", ".join(f"{name}: {count}" for name, count in counts.items()))
    assert within >= REQUIRED_FRACTION * total
    for metric in DISCRETE[version]:
        assert counts[metric] >= REQUIRED_FRACTION * total, metric
    mean_ours = np.mean([ours[k]["score"] for k in golden])
    mean_golden = np.mean([_golden_value(r["score"]) for r in golden.values()])
    assert abs(mean_ours - mean_golden) < SCORE_TOLERANCE


def test_v2_human_filter_diagnostics_match(golden_dir):
    """raw_* (before the filter) and human_* values of the golden v2 CSV, on a sample of logs."""
    golden = golden_rows(golden_dir, "v2")
    logs = list(scenes_info(golden_dir)["logs"].values())[::4]
    checked = 0
    for log in logs:
        for token in log["tokens"]:
            names = list(intermediates(golden_dir, token)["trajectory_names"])
            table = score_trajectories(golden_cache(golden_dir, token, "v2"),
                                       candidate_poses(golden_dir, token, names), "v2")
            for i, name in enumerate(names):
                row = golden[(token, name)]
                for metric, values in table.raw_metrics.items():
                    assert _same(values[i], float(row[f"raw_{metric}"]), TIGHT_TOLERANCE), (token, name, metric)
                for metric, value in table.human_metrics.items():
                    assert _same(value, float(row[f"human_{metric}"]), TIGHT_TOLERANCE), (token, name, metric)
                checked += 1
    assert checked > 0


def test_reference_row_is_included_once_and_ep_is_pairwise(golden_dir):
    """Scoring candidates one by one gives the same result as one batch (EP normalised per [reference, row])."""
    token = scenes_info(golden_dir)["logs"][next(iter(scenes_info(golden_dir)["logs"]))]["tokens"][2]
    cache = golden_cache(golden_dir, token, "v1")
    names = list(intermediates(golden_dir, token)["trajectory_names"])
    poses = candidate_poses(golden_dir, token, names)
    batch = score_trajectories(cache, poses, "v1")
    for i in range(0, len(names), 5):
        single = score_trajectories(cache, poses[i], "v1")
        assert single.score[0] == pytest.approx(batch.score[i], abs=1e-12)


def test_planner_semantics_normalise_progress_over_the_batch(golden_dir):
    token = scenes_info(golden_dir)["logs"][next(iter(scenes_info(golden_dir)["logs"]))]["tokens"][0]
    cache = golden_cache(golden_dir, token, "v1")
    poses = candidate_poses(golden_dir, token, ["human", "accelerate", "brake"])
    states = simulate(submitted_poses_to_reference(cache.ego_state, cache.timepoint_us, poses), cache.ego_state)
    scores = score_simulated_states(states, cache.observation, cache.centerline, cache.route_lane_ids,
                                    cache.drivable_map, "v1")
    masked = scores.raw_progress * scores.multiplicative
    assert scores["ego_progress"].max() == pytest.approx(1.0)
    np.testing.assert_allclose(scores["ego_progress"], masked / masked.max())


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_random_trajectories_never_crash_and_stay_in_unit_interval(golden_dir, version):
    """Thousands of random candidates (smooth, wild, degenerate) over several layouts."""
    rng = np.random.default_rng(7)
    logs = list(scenes_info(golden_dir)["logs"].values())
    total = 0
    for log in logs[::5]:
        token = log["tokens"][3]
        cache = golden_cache(golden_dir, token, version)
        num = 400
        t = np.linspace(0.5, 4.0, 8)
        speed = rng.uniform(-5, 30, (num, 1))
        poses = np.stack([speed * t + rng.normal(0, 2, (num, 8)), rng.normal(0, 3, (num, 8)).cumsum(1),
                          rng.uniform(-np.pi, np.pi, (num, 8))], axis=-1)
        poses[:50] *= rng.uniform(0, 1e-3)  # near standstill
        poses[50:60] = rng.normal(0, 500, (10, 8, 3))  # far off the map
        poses[60:65] = np.clip(rng.normal(0, 1e5, (5, 8, 3)), -1e5, 1e5)  # largest accepted magnitudes
        poses[65:70, :, 2] = rng.normal(0, 1e6, (5, 8))  # unwrapped headings
        table = score_trajectories(cache, poses, version)
        assert np.all(np.isfinite(table.score))
        assert np.all((table.score >= 0) & (table.score <= 1))
        for name, values in table.metrics.items():
            assert np.all((values >= 0) & (values <= 1)), name
        total += num
    assert total >= 1000
