"""Trajectories without scoring: run a planner over a source (submissions), or read them back from results."""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import numpy as np
from tqdm.auto import tqdm

from navsim_eval.evaluation.errors import PlannerError
from navsim_eval.evaluation.planners import CandidatePlanner, PlanningBatch
from navsim_eval.evaluation.results import Variant


def predict(source: Any, planner: CandidatePlanner, batch_size: int = 4,
            show_progress: bool = True) -> dict[Variant, dict[str, np.ndarray]]:
    """{variant: {token: (8, 3)}} for every token of the source; any failure raises naming the token."""
    tokens = source.tokens
    out: dict[Variant, dict[str, np.ndarray]] = {v: {} for v in planner.variants()}
    batches = [tokens[i : i + batch_size] for i in range(0, len(tokens), batch_size)]
    for batch_tokens in tqdm(batches, desc=f"{planner.name} stage {source.stage}", disable=not show_progress):
        inputs, scenes = [], []
        for token in batch_tokens:
            try:
                inputs.append(source.agent_input(token))
                scenes.append(source.scene(token) if planner.needs_scene else None)
            except Exception as error:  # noqa: BLE001 - a submission must cover every token
                reason = f"cannot load scene: {type(error).__name__}: {error}"
                raise PlannerError(planner.name, token, reason) from error
        try:
            planned = planner.plan(PlanningBatch(list(batch_tokens), inputs, scenes if planner.needs_scene else None))
        except Exception as error:  # noqa: BLE001
            raise PlannerError(planner.name, ",".join(batch_tokens), f"{type(error).__name__}: {error}") from error
        for variant, poses in planned.items():
            for index, token in enumerate(batch_tokens):
                values = np.asarray(poses[index], dtype=np.float32)
                if values.shape != (8, 3) or not np.all(np.isfinite(values)):
                    raise PlannerError(planner.name, token, f"invalid trajectory (shape {values.shape})")
                out[variant][token] = values
    return out


def predictions_from_results(rows: Iterable[dict[str, Any]], planner: str, omega: Optional[float] = None,
                             seed: int = 0, sample: int = 0, stage: int = 1) -> dict[str, np.ndarray]:
    """{token: poses} of one variant from results rows (the first metric version's row of each token)."""
    out: dict[str, np.ndarray] = {}
    for row in rows:
        row_omega = row.get("omega")
        same_omega = (omega is None and (row_omega is None or (isinstance(row_omega, float) and math.isnan(row_omega)))
                      ) or (omega is not None and row_omega is not None and math.isclose(float(row_omega), omega))
        if (row["planner"] == planner and same_omega and int(row["seed"]) == seed and int(row["sample"]) == sample
                and int(row["stage"]) == stage and row.get("poses") is not None and row["token"] not in out):
            out[row["token"]] = np.asarray(row["poses"], dtype=np.float32)
    return out
