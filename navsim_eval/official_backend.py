"""Optional scoring through the official NAVSIM devkit (`--backend official`).

A thin adapter: when the `navsim` devkit (and the `nuplan-devkit` it depends on) is importable, submitted poses
are scored with the devkit's own public API against a metric-cache folder written by the devkit's metric
caching script:

* `navsim.common.dataloader.MetricCacheLoader(cache_path)` (`.tokens`, `.get_from_token(token)`),
* `nuplan.planning.simulation.trajectory.trajectory_sampling.TrajectorySampling`,
* `navsim.common.dataclasses.Trajectory(poses, trajectory_sampling)`,
* `PDMSimulator(proposal_sampling)` and `PDMScorer(proposal_sampling[, PDMScorerConfig(human_penalty_filter)])`,
* `navsim.evaluate.pdm_score.pdm_score(...)`: v1 (tag v1.1) returns a `PDMResults` row; v2 (main) takes a
  traffic-agents policy (`LogReplayTrafficAgents(proposal_sampling)`, non-reactive) and returns
  (one-row DataFrame, simulated states).

The devkit is never bundled or required: without it :func:`load_devkit` raises
:class:`OfficialBackendUnavailable` naming the missing package. v2 two-frame extended comfort is paired and
evaluated by this project's implementation on the devkit's simulated states (spec §7.10, §8.4).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from navsim_eval.names import EXTENDED_COMFORT, SCORE_COLUMN, multiplier_columns
from navsim_eval.pdm.constants import NUM_SIM_STEPS, SIM_DT, SUBMISSION_INTERVAL, SUBMISSION_NUM_POSES, check_version
from navsim_eval.pdm.errors import ScoringError, TrajectoryError
from navsim_eval.pdm.scene_pairs import previous_scenes
from navsim_eval.pdm.epdms import epdms, extended_comfort_to_previous
from navsim_eval.pdm.scorer import METRICS, aggregate
from navsim_eval.pdm.trajectory import validate_poses

# Packages the official backend needs: import name -> distribution name shown in errors.
REQUIRED_PACKAGES = {"navsim": "navsim (autonomousvision/navsim devkit)", "nuplan": "nuplan-devkit"}
# Devkit modules and the names taken from them.
DEVKIT_NAMES = {
    "MetricCacheLoader": "navsim.common.dataloader",
    "Trajectory": "navsim.common.dataclasses",
    "pdm_score": "navsim.evaluate.pdm_score",
    "PDMSimulator": "navsim.planning.simulation.planner.pdm_planner.simulation.pdm_simulator",
    "PDMScorer": "navsim.planning.simulation.planner.pdm_planner.scoring.pdm_scorer",
    "TrajectorySampling": "nuplan.planning.simulation.trajectory.trajectory_sampling",
}
V2_ONLY_NAMES = {
    "PDMScorerConfig": "navsim.planning.simulation.planner.pdm_planner.scoring.pdm_scorer",
    "LogReplayTrafficAgents": "navsim.traffic_agents_policies.log_replay_traffic_agents",
}


class OfficialBackendUnavailable(ScoringError):
    """The official devkit (or one of its modules) cannot be imported."""


@dataclass(frozen=True)
class DevkitApi:
    """The devkit callables the adapter uses (resolved once by :func:`load_devkit`)."""

    version: str
    names: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.names[name]
        except KeyError:
            raise AttributeError(name) from None


def load_devkit(version: str) -> DevkitApi:
    """Import the devkit API for a metric version; OfficialBackendUnavailable names what is missing."""
    check_version(version)
    for package, distribution in REQUIRED_PACKAGES.items():
        try:
            importlib.import_module(package)
        except ImportError as exc:
            raise OfficialBackendUnavailable(
                f"--backend official needs the package '{package}' ({distribution}) importable; it is not "
                f"bundled with this project ({exc}). Install it or use the native backend.") from None
    wanted = dict(DEVKIT_NAMES, **(V2_ONLY_NAMES if version == "v2" else {}))
    names: dict[str, Any] = {}
    for name, module_name in wanted.items():
        try:
            names[name] = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            raise OfficialBackendUnavailable(
                f"the installed devkit has no {module_name}.{name} ({type(exc).__name__}: {exc}); "
                f"{version} scoring needs navsim {'main (v2.x)' if version == 'v2' else 'v1.1'}") from None
    return DevkitApi(version, names)


def _row_to_dict(row: Any) -> dict[str, Any]:
    """A devkit result row (PDMResults dataclass, one-row DataFrame or mapping) as a plain dict."""
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    if hasattr(row, "to_dict") and hasattr(row, "columns"):  # pandas DataFrame
        records = row.to_dict(orient="records")
        if len(records) != 1:
            raise ScoringError(f"devkit returned {len(records)} result rows, expected 1")
        return dict(records[0])
    if isinstance(row, Mapping):
        return dict(row)
    raise ScoringError(f"unexpected devkit result of type {type(row).__name__}")


@dataclass
class OfficialResult:
    """One scored (token, trajectory) from the devkit."""

    token: str
    name: str
    metrics: dict[str, float]
    score: float  # v1 PDMS; v2 without EC (denominator 14)
    multiplicative: float
    start_time_us: int
    log_name: str
    simulated_states: Optional[np.ndarray] = None  # (41, 11), v2


class OfficialScorer:
    """Score submitted poses with the devkit's `pdm_score` against a devkit metric-cache folder."""

    def __init__(self, metric_cache_path: Path | str, version: str, devkit: Optional[DevkitApi] = None):
        self.version = version
        self.devkit = devkit or load_devkit(version)
        self.metric_cache_path = Path(metric_cache_path)
        if not self.metric_cache_path.is_dir():
            raise ScoringError(f"official metric cache folder {self.metric_cache_path} does not exist")
        api = self.devkit
        self.proposal_sampling = api.TrajectorySampling(num_poses=NUM_SIM_STEPS, interval_length=SIM_DT)
        self.submission_sampling = api.TrajectorySampling(num_poses=SUBMISSION_NUM_POSES,
                                                          interval_length=SUBMISSION_INTERVAL)
        self.simulator = api.PDMSimulator(self.proposal_sampling)
        if version == "v2":
            self.scorer = api.PDMScorer(self.proposal_sampling, api.PDMScorerConfig(human_penalty_filter=True))
            self.traffic_agents_policy = api.LogReplayTrafficAgents(self.proposal_sampling)
        else:
            self.scorer = api.PDMScorer(self.proposal_sampling)
            self.traffic_agents_policy = None
        self.loader = api.MetricCacheLoader(self.metric_cache_path)

    @property
    def tokens(self) -> list[str]:
        return list(self.loader.tokens)

    def score(self, token: str, name: str, poses: Any) -> OfficialResult:
        """Score one (8, 3) pose set of a token."""
        array = validate_poses(poses, token=token, name=name)
        if len(array) != 1:
            raise TrajectoryError(f"expected one trajectory, got {len(array)}", token=token, name=name)
        if token not in set(self.loader.tokens):
            raise ScoringError(f"token {token}: no metric cache in {self.metric_cache_path}")
        api = self.devkit
        cache = self.loader.get_from_token(token)
        trajectory = api.Trajectory(array[0], self.submission_sampling)
        if self.version == "v2":
            row, states = api.pdm_score(cache, trajectory, self.proposal_sampling, self.simulator, self.scorer,
                                        self.traffic_agents_policy)
        else:
            row, states = api.pdm_score(cache, trajectory, self.proposal_sampling, self.simulator, self.scorer), None
        values = _row_to_dict(row)
        metrics = {metric: float(values[metric]) for metric in METRICS[self.version]}
        if self.version == "v1":
            score = float(values[SCORE_COLUMN])
            multiplicative = float(np.prod([metrics[name] for name in multiplier_columns("v1")]))
        else:
            multiplicative, score = (float(value) for value in aggregate("v2", metrics))
        timepoint = getattr(cache, "timepoint", None)
        start_us = int(getattr(timepoint, "time_us", 0) or 0)
        return OfficialResult(token, name, metrics, score, multiplicative, start_us,
                              str(getattr(cache, "log_name", "") or ""),
                              None if states is None else np.asarray(states, dtype=np.float64))

    def score_rows(self, trajectories: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Rows {token, log_name, trajectory, metrics..., score, error} (v2: EC paired as in spec §7.10)."""
        results: list[OfficialResult] = []
        rows: list[dict[str, Any]] = []
        for token, named in trajectories.items():
            for name, poses in named.items():
                try:
                    results.append(self.score(str(token), str(name), poses))
                    rows.append({"token": str(token), "trajectory": str(name), "error": ""})
                except Exception as exc:  # noqa: BLE001 - the devkit may raise anything; record and continue
                    rows.append({"token": str(token), "trajectory": str(name),
                                 "error": f"{type(exc).__name__}: {exc}"})
        by_key = {(r.token, r.name): r for r in results}
        previous = previous_scenes((r.token, r.log_name, r.start_time_us) for r in results) \
            if self.version == "v2" else {}
        for row in rows:
            result = by_key.get((row["token"], row["trajectory"]))
            if result is None:
                continue
            row.update(log_name=result.log_name, **result.metrics)
            row[SCORE_COLUMN] = result.score
            if self.version == "v2":
                pair = previous.get(result.token)
                prev = by_key.get((pair.token, result.name)) if pair else None
                ec = np.nan
                if result.simulated_states is not None:
                    previous_states = prev.simulated_states if prev is not None else None
                    ec = float(extended_comfort_to_previous(result.simulated_states[None], [previous_states],
                                                            pair)[0])
                row["previous_token"] = pair.token if pair else ""
                row[EXTENDED_COMFORT] = ec
                if not np.isnan(ec):
                    row[SCORE_COLUMN] = float(epdms(result.multiplicative, result.metrics, ec))
        return rows


__all__ = ["DevkitApi", "OfficialBackendUnavailable", "OfficialResult", "OfficialScorer", "load_devkit"]
