"""The evaluation contract the trainer consumes (like the reward contract in ``rewards.py``).

The trainer never imports the evaluation harness: the launch script builds an ``eval_fn`` from
``navsim_eval.evaluation`` (the same harness ``launch/evaluate.py`` runs), so a checkpoint scores the same in
training's results table and in an evaluation run with the same split, omegas and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence


@dataclass(frozen=True)
class EvalPolicy:
    """One policy to evaluate: ``name`` is its planner name in the tables ("dipole", "il", "ewr")."""

    name: str
    policy: Any  # a DipoleVLA (live or loaded)
    mode: str = "base"  # sampling mode: "guided" (every omega) or "base" (adapters off, omega ignored)
    omegas: tuple[float, ...] = ()


@dataclass(frozen=True)
class EvalReport:
    """``results``: {table row label: {column header: value}} (fractions); ``table``: the markdown summary."""

    results: Mapping[str, Mapping[str, float]]
    table: str


EvalFn = Callable[[Sequence[EvalPolicy], str], EvalReport]
"""``eval_fn(policies, run_name)``: evaluate on the eval split; ``run_name`` names the output folder."""
