"""v2 two-frame extended comfort (EC) between consecutive scenes, and the final EPDMS (spec §7.10, §8.4).

The one implementation every scoring front-end uses (the scoring CLI, the evaluation harness, the official
backend): pair each scene with its predecessor of the same log (:func:`navsim_eval.pdm.scene_pairs
.previous_scenes`), compare each trajectory's simulation with the same planner's simulation at that previous
scene over their overlap (:func:`extended_comfort_to_previous`), and add EC to the score
(:func:`epdms`). A scene without a previous frame, or a trajectory the previous frame lacks, has no EC and
keeps the denominator 14.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from navsim_eval.names import multiplier_columns
from navsim_eval.pdm.comfort import extended_comfort
from navsim_eval.pdm.constants import V2_EC_WEIGHT, V2_WEIGHTS
from navsim_eval.pdm.scene_pairs import PreviousScene


def extended_comfort_to_previous(states: np.ndarray, previous_states: Sequence[Optional[np.ndarray]],
                                 pair: Optional[PreviousScene]) -> np.ndarray:
    """EC (K,) of K simulated trajectories (K, 41, 11) against the previous scene's simulation of the same
    trajectory (one (41, 11) array or None each); NaN without a previous scene or previous simulation."""
    values = np.full(len(states), np.nan)
    if pair is None:
        return values
    rows = [i for i, previous in enumerate(previous_states) if previous is not None]
    if rows:
        values[rows] = extended_comfort(np.asarray(states)[rows], np.stack([previous_states[i] for i in rows]),
                                        pair.overlap_offset)
    return values


def epdms(multiplicative, metrics: Mapping[str, Any], extended_comfort_values=None):
    """v2 final score (§8.4): M·(5 EP + 5 TTC + 2 LK + 2 HC [+ 2 EC]) / (14 or 16).

    Works on scalars or (K,) arrays: `metrics` maps the v2 metric names to values (after the human filter);
    `extended_comfort_values` None or NaN means EC is undefined for that entry (denominator 14).
    """
    weighted = sum(weight * metrics[name] for name, weight in V2_WEIGHTS.items())
    total = np.full(np.shape(weighted), sum(V2_WEIGHTS.values()))
    if extended_comfort_values is not None:
        ec = np.asarray(extended_comfort_values, dtype=np.float64)
        defined = ~np.isnan(ec)
        weighted = weighted + np.where(defined, V2_EC_WEIGHT * np.nan_to_num(ec), 0.0)
        total = total + np.where(defined, V2_EC_WEIGHT, 0.0)
    return multiplicative * weighted / total


def epdms_of_table(table, extended_comfort_values: Optional[np.ndarray]) -> np.ndarray:
    """Final EPDMS (K,) of a v2 ``ScoreTable``'s candidates given their EC (None / NaN = undefined)."""
    return epdms(table.multiplicative, table.metrics, extended_comfort_values)


def epdms_of_row(row: Mapping[str, Any], extended_comfort_value: float) -> float:
    """Final EPDMS of one result row holding the (human-filtered) v2 sub-metrics by their column names."""
    multiplicative = math.prod(row[name] for name in multiplier_columns("v2"))
    return float(epdms(multiplicative, row, extended_comfort_value))


__all__ = ["epdms", "epdms_of_row", "epdms_of_table", "extended_comfort_to_previous"]
