"""The evaluation pipeline's data path: agent inputs read by DataLoader workers give the same results, and with
several ranks each rank reads only its own shard of logs (no scene missed or scored twice)."""

from __future__ import annotations

import pytest
import torch

from navsim_eval.evaluation.distributed import Distributed
from navsim_eval.evaluation.pipeline import EvaluationConfig, build_sources, run_pipeline
from navsim_eval.evaluation.planners import ConstantVelocityPlanner, ModelPlanner
from navsim_eval.evaluation.report import select_tokens, token_scores
from navsim_eval.evaluation.runner import RunSettings, run_evaluation
from navsim_eval.evaluation.scorers import NativeScorer
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
