"""v2 two-frame extended comfort (EC) between consecutive scenes of a log, and the final EPDMS.

EC compares the simulated trajectory of a scene with the one the same planner produced at the previous
frame (0.5 s earlier), over their overlap (pdm_score.md §7.10). A scene without a previous frame within
0.55 s has no EC, and its score keeps the denominator 14 (pdm_score.md §8.4). The previous frame's
simulation is taken from this run, or re-simulated from its stored poses after a resume.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from navsim_eval.evaluation.metrics import EC, SCORE
from navsim_eval.evaluation.results import Variant, variant_of
from navsim_eval.pdm.comfort import extended_comfort
from navsim_eval.pdm.scene_pairs import overlap_offset, previous_scenes
from navsim_eval.pdm.scorer import MULTIPLICATIVE, epdms

StatesKey = tuple[str, Variant]


def previous_tokens(tokens: list[str], log_name: Callable[[str], str], timestamp_us: Callable[[str], int]
                    ) -> dict[str, tuple[str, float]]:
    """token -> (previous original-scene token of the same log, interval [s]) for pairs at most 0.55 s apart."""
    pairs = previous_scenes((token, log_name(token), timestamp_us(token)) for token in tokens)
    return {token: (previous.token, previous.gap_s) for token, previous in pairs.items()}


def final_v2_score(row: dict[str, Any], ec: float) -> float:
    """M * (5 EP + 5 TTC + 2 LK + 2 HC [+ 2 EC]) / (14 or 16) from a row's (human-filtered) sub-metrics."""
    multiplicative = math.prod(row[name] for name in MULTIPLICATIVE["v2"])
    return float(epdms(multiplicative, row, ec))


def apply_extended_comfort(
    rows: list[dict[str, Any]],
    previous: dict[str, tuple[str, float]],
    states: dict[StatesKey, np.ndarray],
    resimulate: Optional[Callable[[str, np.ndarray], np.ndarray]] = None,
    poses_of: Optional[dict[StatesKey, np.ndarray]] = None,
) -> None:
    """Fill EC and the final score of v2 stage-1 ``rows`` in place.

    ``states``: simulated states (41, 11) per (token, variant) from this run. ``resimulate(token, poses)``
    rebuilds missing previous-frame states from ``poses_of`` (poses stored by earlier runs).
    """
    poses_of = poses_of or {}
    for row in rows:
        if row["metric"] != "v2" or int(row["stage"]) != 1 or row.get("error"):
            continue
        variant = variant_of(row)
        ec = math.nan
        link = previous.get(row["token"])
        current = states.get((row["token"], variant))
        if link is not None and current is not None:
            prev_token, interval = link
            prev_states = states.get((prev_token, variant))
            if prev_states is None and resimulate is not None and (prev_token, variant) in poses_of:
                prev_states = resimulate(prev_token, np.asarray(poses_of[(prev_token, variant)]))
                states[(prev_token, variant)] = prev_states
            if prev_states is not None:
                ec = float(extended_comfort(current[None], prev_states[None], overlap_offset(interval))[0])
        row[EC] = ec
        row[SCORE] = final_v2_score(row, ec)


__all__ = ["apply_extended_comfort", "final_v2_score", "known_poses", "previous_tokens"]


def known_poses(rows: list[dict[str, Any]]) -> dict[StatesKey, np.ndarray]:
    """(token, variant) -> poses of the scored v2 stage-1 rows (to re-simulate previous frames on resume)."""
    return {(r["token"], variant_of(r)): np.asarray(r["poses"]) for r in rows
            if r["metric"] == "v2" and int(r["stage"]) == 1 and not r.get("error") and r.get("poses") is not None}
