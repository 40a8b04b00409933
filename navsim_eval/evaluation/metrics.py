"""Sub-metric column names (the official devkit's) and the summary-table layouts papers use.

Columns follow the devkit's per-token CSV (navsim@v1.1 / navsim@main ``PDMResults``); the table order follows
pdm_score.md §8 and the published tables of navsim_data.md §10.
"""

from __future__ import annotations

from navsim_eval.pdm.constants import VERSIONS as METRIC_VERSIONS
from navsim_eval.pdm.constants import check_version  # noqa: F401 (the harness's version check)

SCORE = "score"
NC = "no_at_fault_collisions"
DAC = "drivable_area_compliance"
DDC = "driving_direction_compliance"
TLC = "traffic_light_compliance"
EP = "ego_progress"
TTC = "time_to_collision_within_bound"
COMFORT = "comfort"
LK = "lane_keeping"
HC = "history_comfort"
EC = "two_frame_extended_comfort"



SUB_METRICS = {
    "v1": (NC, DAC, DDC, EP, TTC, COMFORT),
    "v2": (NC, DAC, DDC, TLC, EP, TTC, LK, HC, EC),
}
"""Sub-metrics each version computes (v1 DDC has weight 0 but is reported by the devkit)."""

ALL_METRIC_COLUMNS = (NC, DAC, DDC, TLC, EP, TTC, COMFORT, LK, HC, EC, SCORE)
"""Every metric column of the per-token CSV (blank where a version does not define it)."""

TABLE_LAYOUT = {
    "v1": (("NC", NC), ("DAC", DAC), ("TTC", TTC), ("C", COMFORT), ("EP", EP), ("PDMS", SCORE)),
    "v2": (
        ("NC", NC), ("DAC", DAC), ("DDC", DDC), ("TLC", TLC), ("EP", EP), ("TTC", TTC),
        ("LK", LK), ("HC", HC), ("EC", EC), ("EPDMS", SCORE),
    ),
}
"""(header, column) per version, in the order of the papers' tables (navsim_data.md §10)."""

SCORE_NAME = {"v1": "PDMS", "v2": "EPDMS"}
