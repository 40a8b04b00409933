"""Building a split's metric caches up front, by shard; coverage; scoring refuses tokens without a cache."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from navsim_eval import metric_cache_build as build
from navsim_eval import score as score_cli
from navsim_eval.pdm.metric_cache import MetricCacheStore

NUM_LOGS = 4  # one scene each (non-overlapping 14-frame windows of the golden logs)


@pytest.fixture()
def split_yaml(golden_dir, tmp_path):
    logs = sorted(json.loads((golden_dir / "scenes.json").read_text())["logs"])[:NUM_LOGS]
    path = tmp_path / "four_logs.yaml"
    names = "".join(f'      - "{name}"\n' for name in logs)
    path.write_text("data_split: synthetic_public\nscene_filter:\n  num_history_frames: 4\n  num_future_frames: 10\n"
                    f"  frame_interval: null\n  has_route: false\n  log_names:\n{names}")
    return path


def _args(golden_dir, split_yaml, cache_dir, *extra):
    return [f"split={split_yaml}", f"cache_dir={cache_dir}", f"data_root={golden_dir}",
            f"maps_root={golden_dir / 'maps'}", *extra]


def test_shards_build_disjoint_logs_and_coverage_is_reported(golden_dir, split_yaml, tmp_path, capsys):
    cache_dir = tmp_path / "caches"
    assert build.main(_args(golden_dir, split_yaml, cache_dir, "shard=0/2")) == build.EXIT_OK
    assert "v1 shard 0/2: 2 scenes: 2 built, 0 up to date, 0 failed; coverage 2/2" in capsys.readouterr().out
    assert len(MetricCacheStore(cache_dir / "v1").tokens()) == 2

    assert build.main(_args(golden_dir, split_yaml, cache_dir, "coverage_only=true")) == build.EXIT_INCOMPLETE
    report = capsys.readouterr().out
    assert f"v1: coverage of four_logs: 2/{NUM_LOGS}" in report and "without a cache:" in report

    assert build.main(_args(golden_dir, split_yaml, cache_dir, "shard=1/2")) == build.EXIT_OK
    assert build.main(_args(golden_dir, split_yaml, cache_dir, "shard=0/2")) == build.EXIT_OK  # nothing to redo
    assert "2 scenes: 0 built, 2 up to date" in capsys.readouterr().out.splitlines()[-1]
    assert build.main(_args(golden_dir, split_yaml, cache_dir, "coverage_only=true")) == build.EXIT_OK
    assert f"coverage of four_logs: {NUM_LOGS}/{NUM_LOGS}" in capsys.readouterr().out


def test_scoring_refuses_tokens_without_a_cache_and_scores_the_rest(golden_dir, split_yaml, tmp_path, capsys):
    cache_dir = tmp_path / "caches"
    assert build.main(_args(golden_dir, split_yaml, cache_dir, "shard=0/2")) == build.EXIT_OK
    built = set(MetricCacheStore(cache_dir / "v1").tokens())
    from data_pipelines.paths import DataPaths
    from data_pipelines.scene_loader import SceneLoader

    tokens = SceneLoader.from_split(split_yaml, DataPaths.from_env(golden_dir, golden_dir / "maps")).tokens
    poses = np.stack([np.arange(1, 9) * 2.0, np.zeros(8), np.zeros(8)], axis=1).tolist()
    trajectories = tmp_path / "trajectories.json"
    trajectories.write_text(json.dumps({token: poses for token in tokens}))
    out = tmp_path / "scores.csv"
    status = score_cli.main(["--logs", str(golden_dir / "navsim_logs" / "synthetic_public"), "--maps-root",
                             str(golden_dir / "maps"), "--trajectories", str(trajectories), "--metric", "v1",
                             "--out", str(out), "--cache-dir", str(cache_dir), "--require-cache"])
    assert status == score_cli.EXIT_FAILURES
    with out.open() as handle:
        rows = {row["token"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(tokens)
    for token in tokens:
        if token in built:
            assert not rows[token]["error"] and 0.0 <= float(rows[token]["score"]) <= 1.0
        else:
            assert token in rows[token]["error"] and "no cache entry" in rows[token]["error"]
    assert not (set(tokens) - built) & set(MetricCacheStore(cache_dir / "v1").tokens())  # nothing built on the fly
    printed = capsys.readouterr().out
    assert all(token in printed for token in set(tokens) - built)  # listed among the failures


def test_bad_shard_is_a_usage_error(golden_dir, split_yaml, tmp_path, capsys):
    assert build.main(_args(golden_dir, split_yaml, tmp_path, "shard=2/2")) == build.EXIT_USAGE
    assert "shard" in capsys.readouterr().err
