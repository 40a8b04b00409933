"""The runner: every token scored, failures recorded with their reason, resume, sharding by rank."""

from __future__ import annotations

import math

import numpy as np
import pytest

from data_pipelines.log_reader import find_log_files, load_log
from data_pipelines.scene_filter import SceneFilter
from data_pipelines.scene_loader import SceneLoader

from navsim_eval.evaluation.distributed import Distributed
from vla.sampling import PolicySampler
from navsim_eval.evaluation.planners import ConstantVelocityPlanner, HumanPlanner, ModelPlanner
from navsim_eval.evaluation.errors import ResultsFileError
from navsim_eval.evaluation.results import read_rows, results_lock
from navsim_eval.evaluation.runner import RunSettings, partial_path, run_evaluation
from navsim_eval.evaluation.sources import LoaderSource
from tests.data_pipelines.data_helpers import write_log

from .fakes import FakeModel, FakeScorer, FakeSource

TOKENS = [f"{i:02d}aaaaaaaaaaaaaa" for i in range(5)]
SETTINGS = RunSettings(metrics=("v1", "v2"), batch_size=2, show_progress=False)


def _planners():
    return [ModelPlanner(PolicySampler(FakeModel()), omegas=[0.0, 1.0]), ConstantVelocityPlanner(), HumanPlanner()]


def test_every_token_variant_and_metric_gets_a_row_and_failures_are_recorded(tmp_path):
    source = FakeSource(TOKENS, broken={TOKENS[1]})
    scorer = FakeScorer(failing={TOKENS[3]})
    rows = run_evaluation([source], _planners(), scorer, tmp_path / "r.csv", SETTINGS)
    assert len(rows) == len(TOKENS) * 4 * 2  # 4 variants (2 omegas, cv, human) x 2 metrics
    on_disk = read_rows(tmp_path / "r.csv")
    assert len(on_disk) == len(rows)
    errors = {(r["token"], r["error"].split(":")[0]) for r in on_disk if r["error"]}
    assert errors == {(TOKENS[1], "loading scene failed"), (TOKENS[3], "scoring failed")}
    assert all("FileNotFoundError" in r["error"] for r in on_disk if r["token"] == TOKENS[1])
    good = [r for r in on_disk if r["token"] == TOKENS[0] and r["metric"] == "v1"]
    by_planner = {(r["planner"], r["omega"]): r for r in good}
    assert by_planner[("dipole", 1.0)]["score"] > by_planner[("dipole", 0.0)]["score"]
    assert math.isclose(by_planner[("constant_velocity", None)]["ego_progress"], 1.0)
    # endpoint = ego pose (100, 50, 0) + last local pose
    assert math.isclose(by_planner[("dipole", 0.0)]["endpoint_x"], 108.0, abs_tol=0.02)
    assert by_planner[("human", None)]["start_y"] == 50.0
    assert not list(tmp_path.glob(".*partial*"))


def test_rerun_skips_scored_tokens_and_retries_failures(tmp_path):
    out = tmp_path / "r.csv"
    run_evaluation([FakeSource(TOKENS, broken={TOKENS[2]})], _planners(), FakeScorer(), out, SETTINGS)
    source = FakeSource(TOKENS)
    scorer = FakeScorer()
    rows = run_evaluation([source], _planners(), scorer, out, SETTINGS)
    assert source.loaded == [TOKENS[2]]
    assert not any(r["error"] for r in rows) and len(rows) == len(TOKENS) * 4 * 2
    # a new omega: only the model planner reruns, on every token
    planners = [ModelPlanner(PolicySampler(FakeModel()), omegas=[0.0, 1.0, 2.0]), ConstantVelocityPlanner(), HumanPlanner()]
    scorer = FakeScorer()
    rows = run_evaluation([FakeSource(TOKENS)], planners, scorer, out, SETTINGS)
    assert {n for _, n, _ in scorer.calls} == {3}  # 3 omegas scored together, baselines not rerun
    assert len(rows) == len(TOKENS) * 5 * 2


def _run_until_crash_at(token: str, out) -> None:
    """An evaluation into ``out`` interrupted (KeyboardInterrupt) while scoring ``token``."""

    class CrashingScorer(FakeScorer):
        def score(self, scene, poses, version):
            if scene.token == token:
                raise KeyboardInterrupt
            return super().score(scene, poses, version)

    with pytest.raises(KeyboardInterrupt):
        run_evaluation([FakeSource(TOKENS)], [ConstantVelocityPlanner()], CrashingScorer(), out, SETTINGS)


def test_partial_progress_survives_a_crash(tmp_path):
    out = tmp_path / "r.csv"

    _run_until_crash_at(TOKENS[4], out)
    assert not out.exists() and partial_path(out, 0).exists()
    source = FakeSource(TOKENS)
    run_evaluation([source], [ConstantVelocityPlanner()], FakeScorer(), out, SETTINGS)
    assert source.loaded == [TOKENS[4]]
    assert len(read_rows(out)) == len(TOKENS) * 2


def test_ranks_shard_tokens_and_rank_zero_writes_everything(tmp_path):
    out = tmp_path / "r.csv"
    shared: dict[int, list] = {}

    def gather_for(rank):
        def gather(items):
            shared[rank] = list(items)
            return [row for r in sorted(shared) for row in shared[r]]
        return gather

    source1 = FakeSource(TOKENS)
    run_evaluation([source1], [ConstantVelocityPlanner()], FakeScorer(), out,
                   SETTINGS, Distributed(rank=1, world_size=2, gather=gather_for(1)))
    assert source1.loaded == TOKENS[1::2] and not out.exists()
    source0 = FakeSource(TOKENS)
    rows = run_evaluation([source0], [ConstantVelocityPlanner()], FakeScorer(), out,
                          SETTINGS, Distributed(rank=0, world_size=2, gather=gather_for(0)))
    assert source0.loaded == TOKENS[0::2]
    assert {r["token"] for r in read_rows(out)} == set(TOKENS) and len(rows) == len(TOKENS) * 2


def test_the_stage_two_scenes_of_a_link_stay_on_one_rank_each_pair_side_by_side():
    from data_pipelines.scene_filter import TwoStageLink
    from navsim_eval.evaluation.runner import _ordered_shard

    links = [TwoStageLink(f"first{i}", f"prev{i}", ((f"s{i}a", f"t{i}a"), (f"s{i}b", f"t{i}b"))) for i in range(3)]
    source = FakeSource([f"s{i}{k}" for i in range(3) for k in "ab"] + [f"t{i}{k}" for i in range(3) for k in "ab"]
                        + ["lonely"], stage=2)
    source.timestamp = lambda token: 4_500_000 if token.startswith("t") else 5_000_000
    shards = {rank: _ordered_shard(source, Distributed(rank=rank, world_size=2), True, links) for rank in (0, 1)}
    assert shards[0][0] == ["t0a", "s0a", "t0b", "s0b", "t2a", "s2a", "t2b", "s2b"]
    assert shards[1][0] == ["t1a", "s1a", "t1b", "s1b", "lonely"]
    pairs = shards[1][1]
    assert {t: p.token for t, p in pairs.previous.items()} == {"s1a": "t1a", "s1b": "t1b"}
    assert pairs.followers == {"t1a": "s1a", "t1b": "s1b"} and pairs.partner("lonely") is None


def test_a_planner_failing_on_one_token_does_not_stop_the_batch(tmp_path):
    class Picky(ConstantVelocityPlanner):
        def plan(self, batch):
            if TOKENS[2] in batch.tokens:
                raise RuntimeError(f"cannot plan {TOKENS[2]}")
            return super().plan(batch)

    rows = run_evaluation([FakeSource(TOKENS)], [Picky(), HumanPlanner()], FakeScorer(), tmp_path / "r.csv",
                          RunSettings(metrics=("v1",), batch_size=5, show_progress=False))
    failed = {(r["token"], r["planner"]) for r in rows if r["error"]}
    assert failed == {(TOKENS[2], "constant_velocity")}
    assert all("RuntimeError: cannot plan" in r["error"] for r in rows if r["error"])
    assert len(rows) == len(TOKENS) * 2


def test_resume_rescores_a_row_torn_by_a_crash(tmp_path, caplog):
    out = tmp_path / "r.csv"

    _run_until_crash_at(TOKENS[4], out)
    partial = partial_path(out, 0)
    data = partial.read_bytes()
    partial.write_bytes(data[: data.rstrip(b"\r\n").rfind(b"\n") + 30])  # the last row torn 30 bytes in
    torn_token = read_rows(partial, discard_torn_last_row=True)[-1]["token"]
    source = FakeSource(TOKENS)
    with caplog.at_level("WARNING"):
        run_evaluation([source], [ConstantVelocityPlanner()], FakeScorer(), out, SETTINGS)
    assert "discarded, it will be scored again" in caplog.text
    assert source.loaded == [TOKENS[3], TOKENS[4]] and torn_token == TOKENS[3]
    assert len(read_rows(out)) == len(TOKENS) * 2 and not any(r["error"] for r in read_rows(out))


def test_a_second_run_into_the_same_results_is_refused(tmp_path):
    out = tmp_path / "r.csv"
    with results_lock(out):
        with pytest.raises(ResultsFileError, match="another evaluation"):
            run_evaluation([FakeSource(TOKENS)], [ConstantVelocityPlanner()], FakeScorer(), out, SETTINGS)
    assert not out.exists()


def test_an_unreadable_log_becomes_error_rows_and_the_rest_is_scored(golden_dir, tmp_path):
    paths = find_log_files(golden_dir / "navsim_logs")[:2]
    write_log(tmp_path / "logs" / paths[0].name, load_log(paths[0]))
    frames = load_log(paths[1])
    frames[5]["ego2global_rotation"] = np.array([np.nan, 0.0, 0.0, 1.0])
    write_log(tmp_path / "logs" / paths[1].name, frames)
    loader = SceneLoader(tmp_path / "logs", None, SceneFilter(frame_interval=5), record_unreadable_logs=True)
    bad_tokens = set(loader.unreadable_tokens)
    assert bad_tokens and loader.tokens
    rows = run_evaluation([LoaderSource(loader)], [HumanPlanner()], FakeScorer(), tmp_path / "r.csv", SETTINGS)
    failed = {r["token"]: r["error"] for r in rows if r["error"]}
    assert set(failed) == bad_tokens
    assert all(f"log file {tmp_path / 'logs' / paths[1].name}, frame 5, key 'ego2global_rotation'" in e
               for e in failed.values())
    assert {r["log_name"] for r in rows if r["error"]} == {paths[1].stem}
    assert {r["token"] for r in rows if not r["error"]} == set(loader.tokens)
