"""Official-devkit backend: wiring exercised with a tiny fake `navsim` / `nuplan` package that records calls."""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from navsim_eval import score as cli
from navsim_eval.official_backend import OfficialBackendUnavailable, OfficialScorer, load_devkit

FAKE_MODULES = {
    "navsim/__init__.py": "CALLS = []\n",
    "navsim/common/__init__.py": "",
    "navsim/common/dataloader.py": """
        from types import SimpleNamespace
        import navsim

        START_US = {"tok0": 1_000_000, "tok1": 1_500_000, "tok2": 9_000_000}

        class MetricCacheLoader:
            def __init__(self, cache_path, file_name="metric_cache.pkl"):
                navsim.CALLS.append(("MetricCacheLoader", str(cache_path)))
                self.tokens = list(START_US)

            def get_from_token(self, token):
                navsim.CALLS.append(("get_from_token", token))
                return SimpleNamespace(token=token, log_name="log_a",
                                       timepoint=SimpleNamespace(time_us=START_US[token]))
    """,
    "navsim/common/dataclasses.py": """
        from dataclasses import dataclass
        from typing import Any

        @dataclass
        class Trajectory:
            poses: Any
            trajectory_sampling: Any = None
    """,
    "navsim/evaluate/__init__.py": "",
    "navsim/evaluate/pdm_score.py": """
        from dataclasses import dataclass
        import numpy as np
        import navsim

        @dataclass
        class PDMResults:
            no_at_fault_collisions: float
            drivable_area_compliance: float
            ego_progress: float
            time_to_collision_within_bound: float
            comfort: float
            driving_direction_compliance: float
            score: float

        def pdm_score(metric_cache, model_trajectory, future_sampling, simulator, scorer, *policy):
            navsim.CALLS.append(("pdm_score", metric_cache.token, model_trajectory, future_sampling, simulator,
                                 scorer, policy))
            if not policy:  # v1.1 signature
                return PDMResults(1.0, 1.0, 0.75, 0.0, 1.0, 0.5, 0.45)
            row = {"no_at_fault_collisions": 1.0, "drivable_area_compliance": 1.0,
                   "driving_direction_compliance": 1.0, "traffic_light_compliance": 1.0, "ego_progress": 0.5,
                   "time_to_collision_within_bound": 1.0, "lane_keeping": 0.0, "history_comfort": 1.0}
            states = np.zeros((41, 11))
            states[:, 0] = np.arange(41) * 0.5  # same constant-speed motion in every scene
            return row, states
    """,
    "navsim/planning/__init__.py": "",
    "navsim/planning/simulation/__init__.py": "",
    "navsim/planning/simulation/planner/__init__.py": "",
    "navsim/planning/simulation/planner/pdm_planner/__init__.py": "",
    "navsim/planning/simulation/planner/pdm_planner/simulation/__init__.py": "",
    "navsim/planning/simulation/planner/pdm_planner/simulation/pdm_simulator.py": """
        class PDMSimulator:
            def __init__(self, proposal_sampling):
                self.proposal_sampling = proposal_sampling
    """,
    "navsim/planning/simulation/planner/pdm_planner/scoring/__init__.py": "",
    "navsim/planning/simulation/planner/pdm_planner/scoring/pdm_scorer.py": """
        from dataclasses import dataclass
        from typing import Optional

        @dataclass
        class PDMScorerConfig:
            human_penalty_filter: Optional[bool] = None

        class PDMScorer:
            def __init__(self, proposal_sampling, config=None):
                self.proposal_sampling = proposal_sampling
                self.config = config
    """,
    "navsim/traffic_agents_policies/__init__.py": "",
    "navsim/traffic_agents_policies/log_replay_traffic_agents.py": """
        class LogReplayTrafficAgents:
            def __init__(self, future_trajectory_sampling):
                self.future_trajectory_sampling = future_trajectory_sampling
    """,
    "nuplan/__init__.py": "",
    "nuplan/planning/__init__.py": "",
    "nuplan/planning/simulation/__init__.py": "",
    "nuplan/planning/simulation/trajectory/__init__.py": "",
    "nuplan/planning/simulation/trajectory/trajectory_sampling.py": """
        from dataclasses import dataclass
        from typing import Optional

        @dataclass(frozen=True)
        class TrajectorySampling:
            num_poses: Optional[int] = None
            time_horizon: Optional[float] = None
            interval_length: Optional[float] = None
    """,
}


def _forget_devkit_modules() -> None:
    for name in [m for m in sys.modules if m.split(".")[0] in ("navsim", "nuplan")]:
        del sys.modules[name]


@pytest.fixture
def fake_devkit(tmp_path, monkeypatch):
    root = tmp_path / "fake_site"
    for relative, source in FAKE_MODULES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    _forget_devkit_modules()
    monkeypatch.syspath_prepend(str(root))
    (tmp_path / "official_cache").mkdir()
    yield tmp_path / "official_cache"
    _forget_devkit_modules()


def _poses(offset: float = 0.0) -> np.ndarray:
    return np.stack([np.arange(1, 9) * 2.0 + offset, np.zeros(8), np.zeros(8)], axis=-1)


def test_missing_devkit_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "navsim", None)  # makes `import navsim` fail
    with pytest.raises(OfficialBackendUnavailable, match="'navsim'"):
        load_devkit("v1")


def test_missing_nuplan_is_named(fake_devkit, monkeypatch):
    monkeypatch.setitem(sys.modules, "nuplan", None)
    with pytest.raises(OfficialBackendUnavailable, match="nuplan-devkit"):
        load_devkit("v2")


def test_v1_scores_through_the_devkit_api(fake_devkit):
    import navsim

    rows = OfficialScorer(fake_devkit, "v1").score_rows({"tok0": {"a": _poses()}})
    assert rows[0]["error"] == "" and rows[0]["score"] == pytest.approx(0.45)
    assert rows[0]["ego_progress"] == 0.75 and rows[0]["driving_direction_compliance"] == 0.5
    calls = {c[0]: c for c in navsim.CALLS}
    assert calls["MetricCacheLoader"][1] == str(fake_devkit)
    _, token, trajectory, future_sampling, simulator, scorer, policy = calls["pdm_score"]
    assert token == "tok0" and policy == ()
    np.testing.assert_array_equal(trajectory.poses, _poses())
    assert (trajectory.trajectory_sampling.num_poses, trajectory.trajectory_sampling.interval_length) == (8, 0.5)
    assert (future_sampling.num_poses, future_sampling.interval_length) == (40, 0.1)
    assert simulator.proposal_sampling == future_sampling and scorer.config is None


def test_v2_uses_log_replay_and_human_filter_and_pairs_extended_comfort(fake_devkit):
    import navsim

    scorer = OfficialScorer(fake_devkit, "v2")
    rows = scorer.score_rows({"tok0": {"a": _poses()}, "tok1": {"a": _poses(1.0)}, "tok2": {"a": np.full((8, 2), 1.0)},
                              "unknown": {"a": _poses()}})
    by_token = {r["token"]: r for r in rows}
    assert scorer.scorer.config.human_penalty_filter is True
    assert all(c[6][0] is scorer.traffic_agents_policy for c in navsim.CALLS if c[0] == "pdm_score")
    assert scorer.traffic_agents_policy.future_trajectory_sampling.num_poses == 40
    # tok1 starts 0.5 s after tok0 (same log): identical motion -> EC = 1, score over 16.
    assert np.isnan(by_token["tok0"]["two_frame_extended_comfort"])
    assert by_token["tok0"]["score"] == pytest.approx((5 * 0.5 + 5 + 0 + 2) / 14)
    assert by_token["tok1"]["previous_token"] == "tok0" and by_token["tok1"]["two_frame_extended_comfort"] == 1.0
    assert by_token["tok1"]["score"] == pytest.approx((5 * 0.5 + 5 + 0 + 2 + 2) / 16)
    assert "TrajectoryError" in by_token["tok2"]["error"]  # bad shape recorded, not scored
    assert "no metric cache" in by_token["unknown"]["error"]


def test_cli_official_backend_writes_rows(fake_devkit, tmp_path):
    trajectories = tmp_path / "t.json"
    trajectories.write_text(json.dumps({"tok0": _poses().tolist()}))
    out = tmp_path / "o.csv"
    code = cli.main(["--logs", str(tmp_path), "--maps-root", str(tmp_path), "--trajectories", str(trajectories),
                     "--metric", "v1", "--out", str(out), "--backend", "official", "--cache-dir", str(fake_devkit)])
    assert code == cli.EXIT_OK
    rows = list(csv.DictReader(out.open()))
    assert [(r["token"], r["trajectory"], float(r["score"])) for r in rows] == [("tok0", "trajectory", 0.45)]
    assert cli.main(["--logs", str(tmp_path), "--maps-root", str(tmp_path), "--trajectories", str(trajectories),
                     "--metric", "v1", "--out", str(out), "--backend", "official"]) == cli.EXIT_USAGE  # no cache


def test_cli_without_devkit_exits_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "navsim", None)
    with pytest.raises(SystemExit, match="navsim"):
        cli.main(["--logs", str(tmp_path), "--maps-root", str(tmp_path), "--trajectories", str(tmp_path / "t.json"),
                  "--metric", "v2", "--out", str(tmp_path / "o.csv"), "--backend", "official"])
    assert Path(tmp_path / "o.csv").exists() is False
