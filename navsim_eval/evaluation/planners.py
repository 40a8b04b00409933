"""Planners the harness evaluates: the guided DipoleVLA (omega sweep), the IL-only policy and baselines.

Every planner maps a batch of scenes to ``{Variant: poses (B, 8, 3)}`` in the current rear-axle frame.
The model planner encodes each batch once and samples every omega from that context
(``model.encode`` once, ``model.sample(..., omega=[...], context=...)``; dipole.md §4).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

import numpy as np

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


def scene_noise_seed(seed: int, token: str) -> int:
    """Seed of one scene's initial noise, derived from the sampling seed and the scene token.

    One generator per scene keeps a scene's samples independent of batching, sharding and resumption, and
    gives every scene fresh noise (re-seeding each batch with the bare seed would evaluate a whole split on
    `batch_size` noise draws).
    """
    digest = hashlib.sha256(f"{int(seed)}:{token}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


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


class ConstantVelocityPlanner(_SingleTrajectoryPlanner):
    """NAVSIM's constant-velocity baseline: current speed straight ahead, heading 0 (navsim_data.md §10.1)."""

    default_name = "constant_velocity"

    def plan(self, batch: PlanningBatch) -> dict[Variant, np.ndarray]:
        times = INTERVAL_S * np.arange(1, NUM_POSES + 1)
        poses = np.zeros((len(batch.tokens), NUM_POSES, 3), dtype=np.float32)
        for index, agent_input in enumerate(batch.agent_inputs):
            speed = float(np.linalg.norm(np.asarray(agent_input.ego_statuses[-1].ego_velocity, dtype=np.float64)))
            poses[index, :, 0] = speed * times
        return {self.variants()[0]: poses}


class HumanPlanner(_SingleTrajectoryPlanner):
    """The logged human trajectory (the scene's future, 8 poses): the upper reference of the tables."""

    needs_scene = True
    default_name = "human"

    def plan(self, batch: PlanningBatch) -> dict[Variant, np.ndarray]:
        if batch.scenes is None:
            raise ValueError("the human planner needs the logged scenes")
        poses = np.stack([np.asarray(s.get_future_trajectory(NUM_POSES).poses, dtype=np.float32) for s in batch.scenes])
        return {self.variants()[0]: poses}


class ModelPlanner:
    """DipoleVLA sampling: guided (every omega from one encoded context) or the base head (IL, adapters off).

    ``mode="base"`` ignores omega (the IL-only baseline). Variants: omega x seed x sample.
    """

    needs_scene = False

    def __init__(
        self,
        model: Any,
        processor: Any = None,
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
        self.model = model
        self.processor = processor if processor is not None else getattr(model, "processor", None)
        if self.processor is None:
            raise ValueError("no processor: pass one or use a model that carries model.processor")
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

    def _device(self):
        import torch

        device = getattr(self.model, "device", None)
        if device is None:
            device = next(self.model.parameters()).device
        return torch.device(device)

    def plan(self, batch: PlanningBatch) -> dict[Variant, np.ndarray]:
        import torch

        device = self._device()
        inputs = self.processor(list(batch.agent_inputs))
        inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        out: dict[Variant, np.ndarray] = {}
        with torch.inference_mode():
            context = self.model.encode(inputs)
            for seed in self.seeds:
                generator = [torch.Generator(device=device).manual_seed(scene_noise_seed(seed, token))
                             for token in batch.tokens]
                kwargs = dict(num_samples=self.num_samples, context=context, generator=generator, mode=self.mode)
                if self.num_steps is not None:
                    kwargs["num_steps"] = self.num_steps
                if self.mode == "guided":
                    poses = self.model.sample(inputs, omega=list(self.omegas), **kwargs)
                    poses = poses.float().cpu().numpy()  # (B, W, S, 8, 3) for a list of omegas
                    if poses.ndim == 4:  # tolerate a single omega returned without the omega axis
                        poses = poses[:, None]
                    per_omega = [(w, poses[:, i]) for i, w in enumerate(self.omegas)]
                else:
                    poses = self.model.sample(inputs, **kwargs).float().cpu().numpy()
                    per_omega = [(None, poses)]
                for omega, samples in per_omega:  # samples (B, S, 8, 3)
                    for k in range(self.num_samples):
                        out[Variant(self.name, omega, seed, k)] = samples[:, k].astype(np.float32)
        return out
