"""Batch scoring and the CLI: golden rows, EC pairing, bad input recorded per row, submission pickles."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import pickle
import shutil
import sys
import types

import numpy as np
import pytest

from navsim_eval import score as cli
from navsim_eval.pdm.metric_cache import MetricCacheStore
from navsim_eval.scoring import COLUMNS, ScoringConfig, ScoringService, load_trajectories, summarize
from tests.data_pipelines.data_helpers import code_running_pickle
from tests.navsim_eval.pdm.scorer_golden import golden_rows, scenes_info, trajectories


@pytest.fixture(scope="module")
def two_logs(golden_dir, tmp_path_factory):
    """A log folder with two golden logs (nested, to exercise the recursive search)."""
    root = tmp_path_factory.mktemp("logs")
    names = list(scenes_info(golden_dir)["logs"])[1:3]
    for name in names:
        (root / "nested").mkdir(exist_ok=True)
        shutil.copy(golden_dir / "navsim_logs" / "synthetic_public" / f"{name}.pkl", root / "nested" / f"{name}.pkl")
    return root, names


def _read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_cli_reproduces_golden_rows_and_records_bad_input(golden_dir, two_logs, tmp_path, capsys):
    root, names = two_logs
    info = scenes_info(golden_dir)["logs"]
    tokens = info[names[0]]["tokens"]
    submitted = {t: {n: trajectories(golden_dir)[t][n] for n in ("human", "accelerate", "swerve_oncoming")}
                 for t in tokens}
    submitted[tokens[1]]["nan_poses"] = [[float("nan"), 0.0, 0.0]] * 8
    submitted[tokens[1]]["seven_poses"] = [[1.0, 0.0, 0.0]] * 7
    submitted["not_a_token"] = [[1.0, 0.0, 0.0]] * 8
    path = tmp_path / "trajectories.json"
    path.write_text(json.dumps(submitted))
    out = tmp_path / "scores.csv"
    status = cli.main(["--logs", str(root), "--maps-root", str(golden_dir / "maps"), "--trajectories", str(path),
                       "--metric", "v2", "--out", str(out), "--workers", "2", "--cache-dir", str(tmp_path / "cache")])
    assert status == cli.EXIT_FAILURES
    printed = capsys.readouterr().out
    assert "failed: 3" in printed and "not_a_token" in printed and "nan_poses" in printed
    rows = _read_csv(out)
    assert list(rows[0]) == COLUMNS["v2"]
    assert len(rows) == 3 * len(tokens) + 2 + 1
    golden = golden_rows(golden_dir, "v2")
    errors = {(r["token"], r["trajectory"]): r["error"] for r in rows if r["error"]}
    assert set(errors) == {(tokens[1], "nan_poses"), (tokens[1], "seven_poses"), ("not_a_token", "trajectory")}
    assert "non-finite" in errors[(tokens[1], "nan_poses")] and "8 poses" in errors[(tokens[1], "seven_poses")]
    for row in rows:
        if row["error"]:
            assert row["score"] == ""
            continue
        expected = golden[(row["token"], row["trajectory"])]
        assert row["previous_token"] == expected["previous_token"]
        for column in ("score", "ego_progress", "two_frame_extended_comfort", "no_at_fault_collisions",
                       "lane_keeping", "history_comfort", "human_time_to_collision_within_bound"):
            if expected[column] == "":
                assert row[column] == ""
            else:
                assert float(row[column]) == pytest.approx(float(expected[column]), abs=1e-6), column
    # Caches were stored; a second run can require them.
    status = cli.main(["--logs", str(root), "--maps-root", str(golden_dir / "maps"), "--trajectories", str(path),
                       "--metric", "v2", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--require-cache"])
    assert status == cli.EXIT_FAILURES
    assert len(_read_csv(out)) == len(rows)


def test_missing_cache_is_a_per_token_error(golden_dir, two_logs, tmp_path):
    root, names = two_logs
    token = scenes_info(golden_dir)["logs"][names[1]]["tokens"][0]
    config = ScoringConfig(version="v1", maps_root=golden_dir / "maps", cache_dir=tmp_path / "empty",
                           require_cache=True)
    rows = ScoringService(root, config).score({token: trajectories(golden_dir)[token]["human"]})
    assert len(rows) == 1 and "no cache entry" in rows[0]["error"] and token in rows[0]["error"]
    assert summarize(rows, "v1")["failed"] == 1


def test_v1_rows_and_missing_maps_error(golden_dir, two_logs, tmp_path):
    root, names = two_logs
    tokens = scenes_info(golden_dir)["logs"][names[1]]["tokens"][:2]
    submitted = {t: trajectories(golden_dir)[t] for t in tokens}
    rows = ScoringService(root, ScoringConfig(version="v1", maps_root=golden_dir / "maps")).score(submitted)
    golden = golden_rows(golden_dir, "v1")
    assert len(rows) == 2 * 14 and not any(r["error"] for r in rows)
    for row in rows:
        assert row["score"] == pytest.approx(float(golden[(row["token"], row["trajectory"])]["score"]), abs=1e-6)
    broken = ScoringService(root, ScoringConfig(version="v1", maps_root=tmp_path / "no_maps")).score(
        {tokens[0]: submitted[tokens[0]]["human"]})
    assert "MapFileError" in broken[0]["error"] or "map" in broken[0]["error"].lower()


def test_submission_pickles_load_without_the_devkit(tmp_path):
    """Official submission layout with devkit classes (stand-in modules exist only while writing)."""
    dataclasses_module = types.ModuleType("navsim.common.dataclasses")
    sampling_module = types.ModuleType("nuplan.planning.simulation.trajectory.trajectory_sampling")

    class Trajectory:  # noqa: D401 - mimics the devkit class layout
        pass

    class TrajectorySampling:
        pass

    Trajectory.__module__, TrajectorySampling.__module__ = dataclasses_module.__name__, sampling_module.__name__
    Trajectory.__qualname__, TrajectorySampling.__qualname__ = "Trajectory", "TrajectorySampling"
    dataclasses_module.Trajectory, sampling_module.TrajectorySampling = Trajectory, TrajectorySampling
    fake = {dataclasses_module.__name__: dataclasses_module, sampling_module.__name__: sampling_module}
    for module_name in list(fake):
        parts = module_name.split(".")
        for depth in range(1, len(parts)):
            fake.setdefault(".".join(parts[:depth]), types.ModuleType(".".join(parts[:depth])))
    fake = {name: module for name, module in fake.items() if name not in sys.modules}
    sys.modules.update(fake)
    try:
        trajectory = Trajectory()
        trajectory.poses = np.arange(24, dtype=np.float32).reshape(8, 3)
        trajectory.trajectory_sampling = TrajectorySampling()
        v1 = {"team_name": "x", "predictions": [{"tok": trajectory}]}
        v2 = {"team_name": "x", "first_stage_predictions": [{"tok": trajectory}], "second_stage_predictions": [{}]}
        multi = {"predictions": [{"tok": trajectory}, {"tok": trajectory}]}
        for name, payload in (("v1", v1), ("v2", v2), ("multi", multi)):
            (tmp_path / f"{name}.pkl").write_bytes(pickle.dumps(payload))
    finally:
        for module_name in fake:
            sys.modules.pop(module_name, None)
    loaded = load_trajectories(tmp_path / "v1.pkl")
    np.testing.assert_array_equal(loaded["tok"]["trajectory"], np.arange(24).reshape(8, 3))
    assert list(load_trajectories(tmp_path / "v2.pkl")["tok"]) == ["trajectory"]
    assert list(load_trajectories(tmp_path / "multi.pkl")["tok"]) == ["prediction_0", "prediction_1"]


@pytest.mark.parametrize("content, message", [
    ({}, "holds no trajectories"), ({"predictions": [{}]}, "holds no trajectories"),
    ({"tok": {}}, "token\\(s\\) with no trajectories: tok"),
])
def test_cli_rejects_a_trajectory_file_without_trajectories(tmp_path, capsys, content, message):
    path = tmp_path / "trajectories.json"
    path.write_text(json.dumps(content))
    code = cli.main(["--logs", str(tmp_path), "--maps-root", str(tmp_path), "--trajectories", str(path),
                     "--metric", "v1", "--out", str(tmp_path / "out.csv")])
    assert code == cli.EXIT_USAGE
    assert re.search(f"trajectory file {path}: {message}", capsys.readouterr().err)


def test_unreadable_logs_are_named_in_the_rows_of_their_tokens(golden_dir, tmp_path, capsys):
    info = scenes_info(golden_dir)["logs"]
    names = list(info)[:2]
    logs = tmp_path / "logs"
    logs.mkdir()
    source = golden_dir / "navsim_logs" / "synthetic_public"
    frames = pickle.loads((source / f"{names[0]}.pkl").read_bytes())
    frames[5]["ego2global_translation"] = np.array([np.inf, 0.0, 0.0])
    (logs / f"{names[0]}.pkl").write_bytes(pickle.dumps(frames))
    (logs / f"{names[1]}.pkl").write_bytes((source / f"{names[1]}.pkl").read_bytes()[:500])  # truncated
    path = tmp_path / "trajectories.json"
    path.write_text(json.dumps({info[name]["tokens"][0]: [[1.0, 0.0, 0.0]] * 8 for name in names}))
    out = tmp_path / "scores.csv"
    status = cli.main(["--logs", str(logs), "--maps-root", str(golden_dir / "maps"), "--trajectories", str(path),
                       "--metric", "v1", "--out", str(out)])
    assert status == cli.EXIT_FAILURES
    errors = {row["token"]: row["error"] for row in _read_csv(out)}
    assert f"{names[0]}.pkl, frame 5, key 'ego2global_translation': contains NaN or inf" in errors[
        info[names[0]]["tokens"][0]]
    lost = errors[info[names[1]]["tokens"][0]]
    assert "is in none of the readable logs" in lost and f"{names[1]}.pkl: cannot unpickle" in lost
    assert "unknown token" not in lost


def test_cli_refuses_a_code_running_trajectory_file(tmp_path, capsys):
    marker = tmp_path / "ran"
    evil = tmp_path / "trajectories.pkl"
    evil.write_bytes(code_running_pickle(marker, wrap=lambda payload: {"tok": payload}))
    code = cli.main(["--logs", str(tmp_path), "--maps-root", str(tmp_path), "--trajectories", str(evil),
                     "--metric", "v1", "--out", str(tmp_path / "out.csv")])
    assert code == cli.EXIT_USAGE
    assert not marker.exists()
    message = capsys.readouterr().err
    assert f"trajectory file {evil}: references" in message and "system" in message


def test_official_backend_gives_a_clear_error_without_the_devkit(tmp_path):
    try:
        import navsim  # noqa: F401
        pytest.skip("the official devkit is installed here")  # pragma: no cover
    except ImportError:
        pass
    with pytest.raises(SystemExit, match="devkit"):
        cli.main(["--logs", str(tmp_path), "--maps-root", str(tmp_path), "--trajectories", str(tmp_path / "t.json"),
                  "--metric", "v1", "--out", str(tmp_path / "o.csv"), "--backend", "official"])


def test_cache_of_a_rewritten_log_is_rebuilt_or_reported(golden_dir, tmp_path):
    """A cache built from a log goes stale when the log is rewritten (a box moved): rebuilt, or an error naming
    the token and what changed with `require_cache`."""
    name = list(scenes_info(golden_dir)["logs"])[0]
    token = scenes_info(golden_dir)["logs"][name]["tokens"][2]
    root = tmp_path / "logs"
    root.mkdir()
    log_path = root / f"{name}.pkl"
    shutil.copy(golden_dir / "navsim_logs" / "synthetic_public" / f"{name}.pkl", log_path)
    log_path.chmod(0o644)
    submitted = {token: trajectories(golden_dir)[token]["human"]}
    config = ScoringConfig(version="v1", maps_root=golden_dir / "maps", cache_dir=tmp_path / "cache")
    first = ScoringService(root, config).score(submitted)
    assert not first[0]["error"]
    store = MetricCacheStore(tmp_path / "cache" / "v1")
    before = store.load(token).source_fingerprint

    with log_path.open("rb") as handle:
        frames = pickle.load(handle)
    index = next(i for i, f in enumerate(frames) if f["token"] == token)
    future = next(f for f in frames[index + 1 : index + 11] if len(f["anns"]["gt_names"]))
    future["anns"]["gt_boxes"] = np.array(future["anns"]["gt_boxes"], dtype=np.float64)
    future["anns"]["gt_boxes"][0, 0] += 3.0
    with log_path.open("wb") as handle:
        pickle.dump(frames, handle)

    strict = dataclasses.replace(config, require_cache=True)
    reported = ScoringService(root, strict).score(submitted)
    assert "StaleMetricCacheError" in reported[0]["error"] and token in reported[0]["error"]
    assert "scene window's frames" in reported[0]["error"]
    rebuilt = ScoringService(root, config).score(submitted)
    assert not rebuilt[0]["error"]
    after = store.load(token).source_fingerprint
    assert after["scene"] != before["scene"] and after["map"] == before["map"]
    assert not ScoringService(root, strict).score(submitted)[0]["error"]
