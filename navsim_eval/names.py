"""The PDM metric table: official column name, short name, role and weight per version, table order.

Every name, weight and order of the PDM sub-metrics is derived from :data:`METRIC_TABLE` (columns as in the
official devkit's per-token CSV, ``PDMResults`` of navsim v1.1 / main; roles and weights from pdm_score.md §8;
the papers' table order from navsim_data.md §10). Adding a sub-metric means adding one :class:`Metric` row here
and its computation in ``navsim_eval/pdm/scorer.py``.

Roles: a *multiplier* multiplies the score (M = product of the multipliers), a *weighted* metric enters the
weighted average (5 EP + 5 TTC + 2 C) / 12 (v1) or (5 EP + 5 TTC + 2 LK + 2 HC [+ 2 EC]) / (14 or 16) (v2).
Two-frame extended comfort is *paired*: it needs the previous scene's simulation, so the per-scene scorer
leaves it out and the scoring front-ends add it (``navsim_eval/pdm/epdms.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

VERSIONS = ("v1", "v2")
MULTIPLIER, WEIGHTED = "multiplier", "weighted"
SCORE_COLUMN = "score"
SCORE_SHORT_NAME = {"v1": "PDMS", "v2": "EPDMS"}


@dataclass(frozen=True)
class Metric:
    """One PDM sub-metric: its official column, short name and role (and weight) in each version."""

    column: str
    short: str
    description: str
    roles: Mapping[str, tuple[str, float]] = field(default_factory=dict)  # version -> (role, weight)
    paired: bool = False  # needs the previous scene (computed by the front-ends, not the per-scene scorer)

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(v for v in VERSIONS if v in self.roles)


def _multiplier(*versions: str) -> dict[str, tuple[str, float]]:
    return {v: (MULTIPLIER, 1.0) for v in versions}


METRIC_TABLE: tuple[Metric, ...] = (
    Metric("no_at_fault_collisions", "NC", "no at-fault collision", _multiplier("v1", "v2")),
    Metric("drivable_area_compliance", "DAC", "stays in the drivable area", _multiplier("v1", "v2")),
    Metric("driving_direction_compliance", "DDC", "no driving against traffic",
           {"v1": (WEIGHTED, 0.0), "v2": (MULTIPLIER, 1.0)}),
    Metric("traffic_light_compliance", "TLC", "no red-light crossing", _multiplier("v2")),
    Metric("ego_progress", "EP", "progress relative to the PDM-Closed reference",
           {"v1": (WEIGHTED, 5.0), "v2": (WEIGHTED, 5.0)}),
    Metric("time_to_collision_within_bound", "TTC", "time to collision above the bound",
           {"v1": (WEIGHTED, 5.0), "v2": (WEIGHTED, 5.0)}),
    Metric("comfort", "C", "acceleration and jerk bounds", {"v1": (WEIGHTED, 2.0)}),
    Metric("lane_keeping", "LK", "stays near the lane centre", {"v2": (WEIGHTED, 2.0)}),
    Metric("history_comfort", "HC", "comfort including the logged past", {"v2": (WEIGHTED, 2.0)}),
    Metric("two_frame_extended_comfort", "EC", "consistency with the previous frame's plan",
           {"v2": (WEIGHTED, 2.0)}, paired=True),
)
"""The sub-metrics in the order of the official per-token CSV."""

BY_COLUMN: dict[str, Metric] = {m.column: m for m in METRIC_TABLE}
BY_SHORT: dict[str, Metric] = {m.short: m for m in METRIC_TABLE}
EXTENDED_COMFORT = BY_SHORT["EC"].column

TABLE_ORDER = {
    "v1": ("NC", "DAC", "TTC", "C", "EP", "PDMS"),
    "v2": ("NC", "DAC", "DDC", "TLC", "EP", "TTC", "LK", "HC", "EC", "EPDMS"),
}
"""Short names per version in the order of the papers' tables (navsim_data.md §10); v1 DDC (weight 0) is
reported in the CSV but not in the papers' table."""


def scored_columns(version: str) -> tuple[str, ...]:
    """Columns the per-scene scorer computes for a version (paired metrics left out), CSV order."""
    return tuple(m.column for m in METRIC_TABLE if version in m.roles and not m.paired)


def multiplier_columns(version: str) -> tuple[str, ...]:
    return tuple(m.column for m in METRIC_TABLE if m.roles.get(version, ("",))[0] == MULTIPLIER)


def weights(version: str, paired: bool = False) -> dict[str, float]:
    """column -> weight of the weighted average (paired metrics only with ``paired``)."""
    return {m.column: m.roles[version][1] for m in METRIC_TABLE
            if m.roles.get(version, ("",))[0] == WEIGHTED and (paired or not m.paired)}


def paired_weight(version: str) -> float:
    """Weight of the paired (extended comfort) term; 0 when the version has none."""
    return sum(m.roles[version][1] for m in METRIC_TABLE if m.paired and version in m.roles)


ALL_COLUMNS: tuple[str, ...] = tuple(m.column for m in METRIC_TABLE) + (SCORE_COLUMN,)
"""Every metric column of the per-token CSV (blank where a version does not define one)."""


def short_name(column: str, version: str) -> str:
    """Short name of an official column (``score`` -> PDMS / EPDMS); unknown names are returned unchanged."""
    if column == SCORE_COLUMN:
        return SCORE_SHORT_NAME[version]
    metric = BY_COLUMN.get(column)
    return metric.short if metric is not None else column


def column_of(short: str, version: str) -> str:
    """Official column of a short name of a version (PDMS / EPDMS -> ``score``)."""
    if short == SCORE_SHORT_NAME[version]:
        return SCORE_COLUMN
    if short not in BY_SHORT or version not in BY_SHORT[short].roles:
        raise KeyError(f"no metric {short!r} in {version}")
    return BY_SHORT[short].column


def table_layout(version: str) -> tuple[tuple[str, str], ...]:
    """(short name, official column) per version in the papers' table order."""
    return tuple((short, column_of(short, version)) for short in TABLE_ORDER[version])


__all__ = [
    "ALL_COLUMNS", "BY_COLUMN", "BY_SHORT", "EXTENDED_COMFORT", "METRIC_TABLE", "MULTIPLIER", "Metric",
    "SCORE_COLUMN", "SCORE_SHORT_NAME", "TABLE_ORDER", "VERSIONS", "WEIGHTED", "column_of", "multiplier_columns",
    "paired_weight", "scored_columns", "short_name", "table_layout", "weights",
]
