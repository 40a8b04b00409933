"""The harness's side of v2 two-frame extended comfort: which simulation is the previous frame's.

EC and the final EPDMS are computed by :mod:`navsim_eval.pdm.epdms` (pdm_score.md §7.10, §8.4); this module
pairs result rows with the same planner variant at the previous scene of the log, whose simulation is taken
from this run, or re-simulated from its stored poses after a resume.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from navsim_eval.evaluation.metrics import EC, SCORE
from navsim_eval.evaluation.results import Variant, variant_of
from navsim_eval.pdm.epdms import epdms_of_row, extended_comfort_to_previous
from navsim_eval.pdm.scene_pairs import PreviousScene, previous_scenes

StatesKey = tuple[str, Variant]


def previous_tokens(tokens: list[str], log_name: Callable[[str], str], timestamp_us: Callable[[str], int]
                    ) -> dict[str, tuple[str, float]]:
    """token -> (previous original-scene token of the same log, interval [s]) for pairs at most 0.55 s apart."""
    pairs = previous_scenes((token, log_name(token), timestamp_us(token)) for token in tokens)
    return {token: (previous.token, previous.gap_s) for token, previous in pairs.items()}


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
        ec = float("nan")
        link = previous.get(row["token"])
        current = states.get((row["token"], variant))
        if link is not None and current is not None:
            prev_token, interval = link
            prev_states = states.get((prev_token, variant))
            if prev_states is None and resimulate is not None and (prev_token, variant) in poses_of:
                prev_states = resimulate(prev_token, np.asarray(poses_of[(prev_token, variant)]))
                states[(prev_token, variant)] = prev_states
            ec = float(extended_comfort_to_previous(current[None], [prev_states],
                                                    PreviousScene(prev_token, interval))[0])
        row[EC] = ec
        row[SCORE] = epdms_of_row(row, ec)


__all__ = ["apply_extended_comfort", "known_poses", "previous_tokens"]


def known_poses(rows: list[dict[str, Any]]) -> dict[StatesKey, np.ndarray]:
    """(token, variant) -> poses of the scored v2 stage-1 rows (to re-simulate previous frames on resume)."""
    return {(r["token"], variant_of(r)): np.asarray(r["poses"]) for r in rows
            if r["metric"] == "v2" and int(r["stage"]) == 1 and not r.get("error") and r.get("poses") is not None}
