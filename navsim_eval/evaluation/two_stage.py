"""Pseudo closed-loop (two-stage) aggregation, as NAVSIM v2 combines stage-1 and stage-2 scores.

Facts implemented (navsim@main, see docs/evaluation.md for the citations):

* ``SceneAggregator.calculate_pseudo_closed_loop_weights``
  (``navsim/planning/simulation/planner/pdm_planner/scoring/scene_aggregator.py``): each stage-2 scene j of a
  stage-1 scene gets the Gaussian kernel weight ``exp(-d_j^2 / (2 sigma^2))`` with ``sigma^2 = 0.1 m^2``, where
  ``d_j`` is the Euclidean distance between the **planned endpoint** of the stage-1 trajectory (its last pose,
  t = 4 s, in global coordinates) and the stage-2 scene's **ego start position** (rear axle). Weights are
  normalised to sum to 1; when their sum is (numerically) zero or NaN, every stage-2 scene gets 1/N.
* ``calculate_individual_mapping_scores`` (``navsim/planning/script/run_pdm_score.py``): per stage-1 scene,
  the stage-2 metrics are averaged with those weights, and every metric column (the score included) of the
  stage-1 row is multiplied by the weighted stage-2 value. When the mapping also pairs the previous frame
  (t = -0.5 s) with its own stage-2 scenes, the two products are averaged. The benchmark value is the mean
  over stage-1 scenes (NaN-skipping); the stage-1 and stage-2 summaries are the means of their parts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from navsim_eval.evaluation.errors import TwoStageError
from navsim_eval.evaluation.metrics import ALL_METRIC_COLUMNS, SCORE
from navsim_eval.evaluation.results import Variant, variant_of

SIGMA_SQUARED_M2 = 0.1
"""Gaussian kernel variance [m^2] (navsim@main SceneAggregator.sigma_squared default)."""
ZERO_WEIGHT_ATOL = 1e-8
"""A weight sum within this of 0 falls back to uniform weights (np.isclose default atol, as the devkit)."""


@dataclass(frozen=True)
class TwoStageGroup:
    """A stage-1 scene, the stage-2 scenes that start near its end, and optionally the previous frame's pair."""

    first_stage_token: str
    second_stage_tokens: tuple[str, ...]
    previous_token: Optional[str] = None
    previous_second_stage_tokens: tuple[str, ...] = ()


def pseudo_closed_loop_weights(
    endpoint_xy: Sequence[float], start_xy: np.ndarray, sigma_squared: float = SIGMA_SQUARED_M2
) -> np.ndarray:
    """Normalised Gaussian weights of stage-2 scenes (start positions (N, 2)) around a planned endpoint (2,)."""
    start_xy = np.asarray(start_xy, dtype=np.float64).reshape(-1, 2)
    if start_xy.shape[0] == 0:
        return np.zeros(0)
    squared = np.sum((start_xy - np.asarray(endpoint_xy, dtype=np.float64)[None, :2]) ** 2, axis=1)
    weights = np.exp(-squared / (2.0 * sigma_squared))
    total = weights.sum()
    if not np.isfinite(total) or abs(total) <= ZERO_WEIGHT_ATOL:
        return np.full(start_xy.shape[0], 1.0 / start_xy.shape[0])
    return weights / total


@dataclass
class GroupResult:
    """Two-stage result of one stage-1 scene for one planner variant and metric version."""

    first_stage_token: str
    variant: Variant
    metric: str
    stage_one: dict[str, float]
    stage_two: dict[str, float]
    combined: dict[str, float]
    num_second_stage: int
    max_weight: float
    nearest_start_m: float
    note: str = ""

    def as_row(self) -> dict[str, Any]:
        row = {
            "token": self.first_stage_token, "planner": self.variant.planner, "omega": self.variant.omega,
            "seed": self.variant.seed, "sample": self.variant.sample, "metric": self.metric,
            "num_second_stage": self.num_second_stage, "max_weight": self.max_weight,
            "nearest_start_m": self.nearest_start_m, "note": self.note,
        }
        for prefix, values in (("stage_one", self.stage_one), ("stage_two", self.stage_two), ("", self.combined)):
            for column in ALL_METRIC_COLUMNS:
                row[f"{prefix}_{column}" if prefix else column] = values.get(column, math.nan)
        return row


@dataclass
class TwoStageSummary:
    """Means over stage-1 scenes of one variant: combined (the benchmark value), stage one, stage two."""

    variant: Variant
    metric: str
    combined: dict[str, float]
    stage_one: dict[str, float]
    stage_two: dict[str, float]
    num_groups: int
    num_valid_groups: int
    groups: list[GroupResult] = field(default_factory=list)


def _metrics(row: dict[str, Any]) -> np.ndarray:
    return np.array([float(row.get(c, math.nan)) for c in ALL_METRIC_COLUMNS], dtype=np.float64)


def _weighted_stage_two(first_row: dict[str, Any], second_rows: list[dict[str, Any]], sigma_squared: float):
    starts = np.array([[r["start_x"], r["start_y"]] for r in second_rows], dtype=np.float64)
    endpoint = (first_row["endpoint_x"], first_row["endpoint_y"])
    weights = pseudo_closed_loop_weights(endpoint, starts, sigma_squared)
    values = np.stack([_metrics(r) for r in second_rows])
    weighted = (values * weights[:, None]).sum(axis=0)  # NaN propagates per column, as the devkit's sum
    distances = np.hypot(starts[:, 0] - endpoint[0], starts[:, 1] - endpoint[1])
    return weighted, float(weights.max()), float(distances.min())


def _half_group(
    token: str, second_tokens: Sequence[str], index: dict[tuple, dict[str, Any]], key: tuple, sigma_squared: float
):
    """(stage-1 metrics, weighted stage-2 metrics, max weight, nearest distance, note) of one stage-1 frame."""
    first = index.get((token, 1) + key)
    nan = np.full(len(ALL_METRIC_COLUMNS), math.nan)
    if first is None or first.get("error"):
        reason = first.get("error") if first else "no stage-1 result"
        return nan, nan, math.nan, math.nan, f"stage 1 {token}: {reason}"
    seconds = [index.get((t, 2) + key) for t in second_tokens]
    valid = [r for r in seconds if r is not None and not r.get("error")]
    if not valid:
        return _metrics(first), nan, math.nan, math.nan, f"stage 1 {token}: no scored stage-2 scene"
    if any(math.isnan(v) for v in (first["endpoint_x"], first["endpoint_y"])):
        raise TwoStageError(f"stage-1 row of token {token!r} has no planned endpoint")
    weighted, max_weight, nearest = _weighted_stage_two(first, valid, sigma_squared)
    note = f"{len(seconds) - len(valid)} stage-2 scene(s) failed" if len(valid) < len(seconds) else ""
    return _metrics(first), weighted, max_weight, nearest, note


def _as_dict(values: np.ndarray) -> dict[str, float]:
    return dict(zip(ALL_METRIC_COLUMNS, values.tolist()))


def _mean(results: Sequence[GroupResult], part: str) -> dict[str, float]:
    """NaN-skipping mean of one part (combined / stage_one / stage_two) over groups, per metric column."""
    stacked = np.array([[getattr(r, part)[c] for c in ALL_METRIC_COLUMNS] for r in results], dtype=np.float64)
    stacked = stacked.reshape(-1, len(ALL_METRIC_COLUMNS))
    counts = np.sum(~np.isnan(stacked), axis=0)
    sums = np.nansum(stacked, axis=0)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), math.nan)
    return dict(zip(ALL_METRIC_COLUMNS, means.tolist()))


def aggregate_two_stage(
    rows: Iterable[dict[str, Any]],
    groups: Sequence[TwoStageGroup],
    sigma_squared: float = SIGMA_SQUARED_M2,
) -> list[TwoStageSummary]:
    """Combine stage-1 and stage-2 result rows per planner variant and metric version.

    ``rows`` hold both stages (``stage`` 1 and 2) with ``endpoint_x/y`` on stage-1 rows and ``start_x/y`` on
    stage-2 rows. Returns one summary per (variant, metric) found among the stage-1 rows.
    """
    rows = list(rows)
    index: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        variant = variant_of(row)
        index[(row["token"], int(row["stage"]), variant, row["metric"])] = row
    keys = sorted({(variant_of(r), r["metric"]) for r in rows if int(r["stage"]) == 1},
                  key=lambda k: (k[0].planner, k[0].omega if k[0].omega is not None else -math.inf,
                                 k[0].seed, k[0].sample, k[1]))
    summaries = []
    for variant, metric in keys:
        key = (variant, metric)
        results = []
        for group in groups:
            one, two, max_w, nearest, note = _half_group(
                group.first_stage_token, group.second_stage_tokens, index, key, sigma_squared)
            combined = one * two
            if group.previous_token is not None:
                p_one, p_two, _, _, p_note = _half_group(
                    group.previous_token, group.previous_second_stage_tokens, index, key, sigma_squared)
                combined = (combined + p_one * p_two) / 2.0
                one, two = (one + p_one) / 2.0, (two + p_two) / 2.0
                note = "; ".join(n for n in (note, p_note) if n)
            results.append(GroupResult(
                group.first_stage_token, variant, metric, _as_dict(one), _as_dict(two), _as_dict(combined),
                len(group.second_stage_tokens), max_w, nearest, note))

        valid = sum(not math.isnan(r.combined[SCORE]) for r in results)
        summaries.append(TwoStageSummary(variant, metric, _mean(results, "combined"), _mean(results, "stage_one"),
                                         _mean(results, "stage_two"), len(results), valid, results))
    return summaries
