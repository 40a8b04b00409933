"""The evaluation pipeline's data path: agent inputs read by DataLoader workers give the same results, and with
several ranks each rank reads only its own shard of logs (no scene missed or scored twice)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from navsim_eval.evaluation.distributed import Distributed
from navsim_eval.evaluation.metrics import EC, SCORE
from navsim_eval.evaluation.pipeline import EvaluationConfig, build_sources, run_pipeline
from navsim_eval.evaluation.planners import ConstantVelocityPlanner, ModelPlanner
from navsim_eval.evaluation.report import select_tokens, token_scores
from navsim_eval.evaluation.runner import RunSettings, run_evaluation
from navsim_eval.evaluation.scorers import NativeScorer
from navsim_eval.evaluation.sources import TokenSubset, TwoStageSource
from navsim_eval.evaluation.summary import summarize
from navsim_eval.pdm.comfort import extended_comfort
from navsim_eval.pdm.constants import SIM_DT
from vla.sampling import PolicySampler
from vla.testing import tiny_model

from tests.vla.training.helpers import generate_tiny_world

SPLIT = "synthetic_test"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_tiny_world(tmp_path_factory.mktemp("tiny_world"))


def _config(world, out, **kwargs):
    settings = dict(split=SPLIT, data_root=str(world), baselines=("constant_velocity",), metrics=("v1", "v2"),
                    omegas=(0.0, 1.0), num_steps=2, batch_size=3, output_dir=str(out), two_stage="off",
                    report_worst=0, report_sample=0, progress=False)
    return EvaluationConfig(**{**settings, **kwargs})


def _comparable(rows):
    return sorted((tuple(sorted((k, repr(v)) for k, v in row.items())) for row in rows))


def test_results_are_identical_with_0_and_2_loader_workers(world, tmp_path):
    torch.set_num_threads(1)
    scorer = NativeScorer(tmp_path / "metric_cache", build_missing=True)
    model = tiny_model("tiny-florence2")  # reads the three front cameras: the decoded images decide its plans
    results = {}
    for workers in (0, 2):
        config = _config(world, tmp_path / f"workers{workers}", num_workers=workers)
        planners = [ModelPlanner(PolicySampler(model), omegas=config.omegas, num_steps=config.num_steps),
                    ConstantVelocityPlanner()]
        results[workers] = run_pipeline(config, planners, scorer=scorer).rows
    assert results[0] and not any(row["error"] for row in results[0])
    assert _comparable(results[0]) == _comparable(results[2])


def test_two_ranks_each_read_only_their_log_shard(world, tmp_path):
    config = _config(world, tmp_path / "out")
    (whole,) = build_sources(config)
    shared: dict[int, list] = {}

    def topology(rank):
        def gather(items):
            shared[rank] = list(items)
            return [row for r in sorted(shared) for row in shared[r]]
        return Distributed(rank=rank, world_size=2, gather=gather)

    sources = {rank: build_sources(config, distributed=topology(rank))[0] for rank in (1, 0)}
    logs = {rank: set(source.loader.get_tokens_list_per_log()) for rank, source in sources.items()}
    assert logs[0] and logs[1] and not logs[0] & logs[1]
    assert logs[0] | logs[1] == set(whole.loader.get_tokens_list_per_log())
    shared.clear()
    report = _config(world, tmp_path / "out", metrics=("v1",), report_worst=1, report_sample=1)
    outputs = {}
    for rank in (1, 0):  # rank 0 last: it merges every rank's rows and writes the report
        outputs[rank] = run_pipeline(report, [ConstantVelocityPlanner()], sources=[sources[rank]],
                                     scorer=NativeScorer(), distributed=topology(rank))
    scored = [row["token"] for row in shared[0] + shared[1]]
    assert len(scored) == len(set(scored)) and set(scored) == set(whole.tokens)
    assert {row["token"] for row in outputs[0].rows} == set(whole.tokens)
    # the report's scenes are read from their own logs, on rank 0, whichever rank scored them
    shown = [path.stem.split("_", 2)[2] for path in outputs[0].report_files if path.parent.name == "scenes"]
    expected = [token for _, token in select_tokens(token_scores(outputs[0].rows, "v1"), 1, 1)]
    assert sorted(shown) == sorted(expected)
    settings = RunSettings(metrics=("v1",), batch_size=4, show_progress=False)
    with pytest.raises(ValueError, match="log shard"):
        run_evaluation([sources[1]], [ConstantVelocityPlanner()], NativeScorer(), tmp_path / "other.csv", settings,
                       topology(0))


def _pair_ec(scorer, source, now_row, prev_row):
    """EC between two scenes' simulations of the rows' poses, computed here from the states and start times."""
    states = [scorer.score_with_states(source.scene(row["token"]), row["poses"][None], "v2")[1][0]
              for row in (now_row, prev_row)]
    gap_s = (source.timestamp(now_row["token"]) - source.timestamp(prev_row["token"])) * 1e-6
    return float(extended_comfort(states[0][None], states[1][None], round(gap_s / SIM_DT))[0])


class _FailingOn:
    """A NativeScorer that fails on chosen scenes (a stage-2 partner whose scoring failed)."""

    def __init__(self, scorer, failing):
        self.scorer, self.failing = scorer, set(failing)

    def score_with_states(self, scene, poses, version):
        if scene.scene_metadata.initial_token in self.failing:
            raise RuntimeError("metric cache missing")
        return self.scorer.score_with_states(scene, poses, version)

    def score(self, scene, poses, version):
        return self.score_with_states(scene, poses, version)[0]


def test_stage_two_rows_carry_the_extended_comfort_of_their_pair(world, tmp_path):
    config = _config(world, tmp_path, split="synthetic_test_two_stage", two_stage="auto")
    stage_one, stage_two = build_sources(config)
    links = stage_two.links[:2]
    firsts = [t for link in links for t in (link.previous_token, link.first_stage_token)]
    stage_one = TokenSubset(stage_one, firsts)
    stage_two = TwoStageSource(stage_two.data, stage_two.sensor_config, stage_two.map_provider, firsts)
    pairs = [pair for link in links for pair in link.second_stage_pairs]
    scorer = NativeScorer()
    settings = RunSettings(metrics=("v2",), batch_size=3, show_progress=False)  # pairs straddle batches
    rows = run_evaluation([stage_one, stage_two], [ConstantVelocityPlanner()], scorer, tmp_path / "r.csv", settings)
    by_token = {row["token"]: row for row in rows}
    assert len(pairs) > 1 and not any(row["error"] for row in rows)
    assert {row["token"] for row in rows if row["stage"] == 2} == {t for pair in pairs for t in pair}
    for now, prev in pairs:
        expected = _pair_ec(scorer, stage_two, by_token[now], by_token[prev])
        assert by_token[now][EC] == by_token[prev][EC] == expected
    for link in links:  # the stage-1 previous frame takes its link's value
        expected = _pair_ec(scorer, stage_one, by_token[link.first_stage_token], by_token[link.previous_token])
        assert by_token[link.first_stage_token][EC] == by_token[link.previous_token][EC] == expected
    for row in rows:  # the final EPDMS counts EC (weight 2 of 16)
        weighted = (5 * row["ego_progress"] + 5 * row["time_to_collision_within_bound"] + 2 * row["lane_keeping"]
                    + 2 * row["history_comfort"] + 2 * row[EC]) / 16
        multiplier = math.prod(row[c] for c in ("no_at_fault_collisions", "drivable_area_compliance",
                                                 "driving_direction_compliance", "traffic_light_compliance"))
        assert row[SCORE] == pytest.approx(multiplier * weighted)
    (line,) = summarize(rows, "v2", stage=2)
    assert line.means[EC] == pytest.approx(np.mean([by_token[t][EC] for pair in pairs for t in pair]))
    # a partner whose scoring failed leaves its pair's other scene with an error naming it
    failed_now, failed_prev = pairs[0]
    rows = run_evaluation([stage_two], [ConstantVelocityPlanner()], _FailingOn(scorer, [failed_now]),
                          tmp_path / "failed.csv", settings)
    by_token = {row["token"]: row for row in rows}
    assert f"paired scene {failed_now} has no simulation" in by_token[failed_prev]["error"]
    assert math.isnan(by_token[failed_prev][SCORE])
    assert {t for t, row in by_token.items() if row["error"]} == {failed_now, failed_prev}
