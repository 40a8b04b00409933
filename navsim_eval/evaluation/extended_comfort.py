"""The harness's side of v2 two-frame extended comfort: which simulation each row's EC compares with.

EC and the final EPDMS are computed by :mod:`navsim_eval.pdm.epdms` (pdm_score.md §7.10, §8.4), the pairs come
from :mod:`navsim_eval.pdm.scene_pairs`: stage-1 scenes with the previous scene of their log, or with the previous
frame a two-stage split links them to; stage-2 scenes with the stage-2 scene of the previous frame made with
the same perturbation. Both scenes of a two-stage pair get the pair's value, as the devkit gives it. The
partner's simulation of the same planner variant comes from this run, or is re-simulated from its stored poses
after a resume. A row whose partner has no simulation (its scoring failed, or it was not evaluated) is an
error naming the partner.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Collection, Optional

import numpy as np

from navsim_eval.evaluation.metrics import EC, SCORE
from navsim_eval.evaluation.results import Variant, variant_of
from navsim_eval.pdm.epdms import epdms_of_row, extended_comfort_to_previous
from navsim_eval.pdm.scene_pairs import ComfortPairs, previous_scenes

StatesKey = tuple[str, Variant]


def previous_tokens(tokens: list[str], log_name: Callable[[str], str], timestamp_us: Callable[[str], int]
                    ) -> ComfortPairs:
    """The one-stage pairs of ``tokens``: each with the previous original scene of its log at most 0.55 s earlier."""
    return ComfortPairs(previous=previous_scenes((token, log_name(token), timestamp_us(token)) for token in tokens))


def _fail(row: dict[str, Any], reason: str) -> None:
    row[EC], row[SCORE], row["error"] = math.nan, math.nan, reason


def apply_extended_comfort(
    rows: list[dict[str, Any]],
    pairs: ComfortPairs,
    states: dict[StatesKey, np.ndarray],
    resimulate: Optional[Callable[[str, np.ndarray], np.ndarray]] = None,
    poses_of: Optional[dict[StatesKey, np.ndarray]] = None,
    pending: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Fill EC and the final score of the v2 ``rows`` in place; returns the rows held back because their partner
    is among ``pending`` (scenes this run scores later): pass them again once it has been scored.

    ``states``: simulated states (41, 11) per (token, variant) from this run. ``resimulate(token, poses)``
    rebuilds a partner's states from ``poses_of`` (poses stored by earlier runs). A row without a pair has no
    EC (NaN, denominator 14); a row whose pair is invalid or whose partner has no simulation becomes an error.
    """
    poses_of = poses_of or {}
    held = []
    for row in rows:
        if row["metric"] != "v2" or row.get("error"):
            continue
        token, variant = row["token"], variant_of(row)
        if token in pairs.invalid:
            _fail(row, pairs.invalid[token])
            continue
        pair = pairs.pair_of(token)
        own = states.get((token, variant))
        if pair is None or own is None:
            ec = math.nan  # no previous scene (or a caller without simulations): EC undefined
            row[EC], row[SCORE] = ec, epdms_of_row(row, ec)
            continue
        later, previous = pair
        partner = previous.token if later == token else later
        partner_states = states.get((partner, variant))
        if partner_states is None and resimulate is not None and (partner, variant) in poses_of:
            partner_states = resimulate(partner, np.asarray(poses_of[(partner, variant)]))
            states[(partner, variant)] = partner_states
        if partner_states is None:
            if partner in pending:
                held.append(row)
            else:
                _fail(row, f"extended comfort undefined: the paired scene {partner} has no simulation of "
                           f"{variant.label} (its scoring failed or it was not evaluated)")
            continue
        current, earlier = (own, partner_states) if later == token else (partner_states, own)
        ec = float(extended_comfort_to_previous(current[None], [earlier], previous)[0])
        row[EC], row[SCORE] = ec, epdms_of_row(row, ec)
    return held


def known_poses(rows: list[dict[str, Any]]) -> dict[StatesKey, np.ndarray]:
    """(token, variant) -> poses of the scored v2 rows (to re-simulate a partner on resume)."""
    return {(r["token"], variant_of(r)): np.asarray(r["poses"]) for r in rows
            if r["metric"] == "v2" and not r.get("error") and r.get("poses") is not None}


__all__ = ["apply_extended_comfort", "known_poses", "previous_tokens"]
