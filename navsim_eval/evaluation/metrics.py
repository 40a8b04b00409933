"""Metric column names of the harness's result rows, from the one metric table (:mod:`navsim_eval.names`)."""

from __future__ import annotations

from navsim_eval import names
from navsim_eval.pdm.constants import VERSIONS as METRIC_VERSIONS  # noqa: F401 (the harness's versions)
from navsim_eval.pdm.constants import check_version  # noqa: F401 (the harness's version check)

SCORE = names.SCORE_COLUMN
EC = names.EXTENDED_COMFORT

ALL_METRIC_COLUMNS = names.ALL_COLUMNS
"""Every metric column of the per-token CSV (blank where a version does not define it)."""

TABLE_LAYOUT = {version: names.table_layout(version) for version in names.VERSIONS}
"""(header, column) per version, in the order of the papers' tables (navsim_data.md §10)."""

SCORE_NAME = names.SCORE_SHORT_NAME
