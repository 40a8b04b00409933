"""Planners the harness evaluates: the guided DipoleVLA (omega sweep), the IL-only policy and baselines.

Every planner maps a batch of scenes to ``{Variant: poses (B, 8, 3)}`` in the current rear-axle frame.
The model planner asks a scene sampler (``vla.sampling.PolicySampler``, built by the caller: this package
does not import the model code) for every seed and omega; the sampler encodes each batch once and draws
each scene's noise from its own generator seeded by (seed, token) (dipole.md §4).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from data_pipelines.geometry import constant_turn_rate_poses, history_yaw_rate
from data_pipelines.types import AgentInput
from navsim_eval.evaluation.results import Variant

NUM_POSES = 8
"""Poses per planned trajectory (navsim_data.md §5)."""
INTERVAL_S = 0.5
"""Time between poses [s] (navsim_data.md §5)."""


@dataclass
class PlanningBatch:
    """Inputs of one planning call; ``scenes`` is filled only when a planner needs the logged scene."""

    tokens: list[str]
    agent_inputs: list[AgentInput]
    scenes: Optional[list[Any]] = None


class CandidatePlanner(Protocol):
    name: str
    needs_scene: bool

    def variants(self) -> list[Variant]: ...

    def plan(self, batch: PlanningBatch) -> dict[Variant, np.ndarray]: ...


class _SingleTrajectoryPlanner:
    """A baseline with one trajectory per scene (one variant, named after the planner)."""

    needs_scene = False
    default_name = ""

    def __init__(self, name: Optional[str] = None):
        self.name = name or self.default_name

    def variants(self) -> list[Variant]:
        return [Variant(self.name)]


def current_speed(agent_input: AgentInput) -> float:
    """The ego's speed in the current frame [m/s]."""
    return float(np.linalg.norm(np.asarray(agent_input.ego_statuses[-1].ego_velocity, dtype=np.float64)))


class StandingStillPlanner(_SingleTrajectoryPlanner):
    """Stays at the current pose for the whole horizon: the floor every driving policy must beat."""

    default_name = "standing_still"

    def plan(self, batch: PlanningBatch) -> dict[Variant, np.ndarray]:
        return {self.variants()[0]: np.zeros((len(batch.tokens), NUM_POSES, 3), dtype=np.float32)}


class ConstantVelocityPlanner(_SingleTrajectoryPlanner):
    """NAVSIM's constant-velocity baseline: current speed straight ahead, heading 0 (navsim_data.md §10.1)."""

    default_name = "constant_velocity"

    def plan(self, batch: PlanningBatch) -> dict[Variant, np.ndarray]:
        times = INTERVAL_S * np.arange(1, NUM_POSES + 1)
        poses = np.zeros((len(batch.tokens), NUM_POSES, 3), dtype=np.float32)
        for index, agent_input in enumerate(batch.agent_inputs):
            poses[index, :, 0] = current_speed(agent_input) * times
        return {self.variants()[0]: poses}


class ConstantTurnRatePlanner(_SingleTrajectoryPlanner):
    """Current speed and the yaw rate of the last history interval, held for the horizon (an arc).

    The yaw rate is the heading change from the previous history frame to the current one (history frames are
    ``INTERVAL_S`` apart, navsim_data.md §5): a kinematic extrapolation of the ego state alone, so a policy
    that uses its ego state should at least match it on curves.
    """

    default_name = "constant_turn_rate"

    def plan(self, batch: PlanningBatch) -> dict[Variant, np.ndarray]:
        speeds, yaw_rates = [], []
        for agent_input in batch.agent_inputs:
            statuses = agent_input.ego_statuses
            speeds.append(current_speed(agent_input))
            yaw_rates.append(0.0 if len(statuses) < 2 else
                             float(history_yaw_rate(statuses[-1].ego_pose[2], statuses[-2].ego_pose[2], INTERVAL_S)))
        times = INTERVAL_S * np.arange(1, NUM_POSES + 1)
        poses = constant_turn_rate_poses(np.array(speeds), np.array(yaw_rates), times)
        return {self.variants()[0]: poses.reshape(len(batch.tokens), NUM_POSES, 3).astype(np.float32)}


class HumanPlanner(_SingleTrajectoryPlanner):
    """The logged human trajectory (the scene's future, 8 poses): the upper reference of the tables."""

    needs_scene = True
    default_name = "human"

    def plan(self, batch: PlanningBatch) -> dict[Variant, np.ndarray]:
        if batch.scenes is None:
            raise ValueError("the human planner needs the logged scenes")
        poses = np.stack([np.asarray(s.get_future_trajectory(NUM_POSES).poses, dtype=np.float32) for s in batch.scenes])
        return {self.variants()[0]: poses}


MODEL_FREE_PLANNERS = {"standing_still": StandingStillPlanner, "constant_velocity": ConstantVelocityPlanner,
                       "constant_turn_rate": ConstantTurnRatePlanner, "human": HumanPlanner}
"""The baselines that need no model, by name (``EvaluationConfig.baselines``, ``make_submission --planner``)."""


class SceneSampler(Protocol):
    """Samples a model for a batch of scenes (``vla.sampling.PolicySampler``): processor, one encode, sample."""

    def sample_agent_inputs(self, agent_inputs: Sequence[AgentInput], tokens: Sequence[str], *,
                            seeds: Sequence[int], omegas: Optional[Sequence[float]], mode: str, num_samples: int,
                            num_steps: Optional[int] = None) -> list[np.ndarray]:
        """Per seed, poses (B, W, S, 8, 3); each scene's noise from its own generator seeded by (seed, token)."""
        ...


class ModelPlanner:
    """A model through its scene sampler: guided (every omega from one encoded context) or the base policy
    (IL, adapters off).

    ``mode="base"`` ignores omega (the IL-only baseline). Variants: omega x seed x sample.
    """

    needs_scene = False

    def __init__(
        self,
        sampler: SceneSampler,
        *,
        name: str = "dipole",
        omegas: Sequence[float] = (1.0,),
        seeds: Sequence[int] = (0,),
        num_samples: int = 1,
        num_steps: Optional[int] = None,
        mode: str = "guided",
    ):
        if mode not in ("guided", "base"):
            raise ValueError(f"unknown sampling mode {mode!r}; expected 'guided' or 'base'")
        if not omegas and mode == "guided":
            raise ValueError("the guided sampling mode needs at least one omega")
        if not callable(getattr(sampler, "sample_agent_inputs", None)):
            raise TypeError(f"ModelPlanner needs a scene sampler (e.g. vla.sampling.PolicySampler(model)), "
                            f"got {type(sampler).__name__}")
        self.sampler = sampler
        self.name = name
        self.mode = mode
        self.omegas = [float(w) for w in omegas] if mode == "guided" else []
        self.seeds = [int(s) for s in seeds]
        self.num_samples = int(num_samples)
        self.num_steps = num_steps

    def variants(self) -> list[Variant]:
        omegas: list[Optional[float]] = self.omegas if self.mode == "guided" else [None]
        grid = itertools.product(omegas, self.seeds, range(self.num_samples))
        return [Variant(self.name, w, s, k) for w, s, k in grid]

    def plan(self, batch: PlanningBatch) -> dict[Variant, np.ndarray]:
        per_seed = self.sampler.sample_agent_inputs(
            batch.agent_inputs, batch.tokens, seeds=self.seeds,
            omegas=self.omegas if self.mode == "guided" else None, mode=self.mode,
            num_samples=self.num_samples, num_steps=self.num_steps)
        omegas: list[Optional[float]] = self.omegas if self.mode == "guided" else [None]
        out: dict[Variant, np.ndarray] = {}
        for seed, poses in zip(self.seeds, per_seed):  # poses (B, W, S, 8, 3)
            for i, omega in enumerate(omegas):
                for k in range(self.num_samples):
                    out[Variant(self.name, omega, seed, k)] = np.asarray(poses[:, i, k], dtype=np.float32)
        return out
