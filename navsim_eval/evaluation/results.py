"""The per-token results CSV: one row per (token, stage, planner variant, metric version).

Rows are plain dicts with typed values in memory (floats, NaN for undefined metrics, poses as (8, 3)
arrays) and text on disk. A rerun reads the CSV back and skips every key already scored without error.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np

from navsim_eval.evaluation.errors import ResultsFileError
from navsim_eval.evaluation.metrics import ALL_METRIC_COLUMNS

PathLike = Union[str, Path]

ID_COLUMNS = ("token", "stage", "log_name", "planner", "omega", "seed", "sample", "metric")
GEOMETRY_COLUMNS = ("endpoint_x", "endpoint_y", "start_x", "start_y")
"""Global planned endpoint (last pose) and ego start position: the inputs of two-stage weighting."""
CSV_COLUMNS = ID_COLUMNS + ALL_METRIC_COLUMNS + GEOMETRY_COLUMNS + ("poses", "error")
FLOAT_COLUMNS = frozenset(ALL_METRIC_COLUMNS + GEOMETRY_COLUMNS)
POSES_DECIMALS = 6
"""Decimals kept for poses in the CSV (micrometres; float32 poses need no more)."""


@dataclass(frozen=True)
class Variant:
    """One planner setting whose trajectories are scored: planner name, omega (model only), seed, sample."""

    planner: str
    omega: Optional[float] = None
    seed: int = 0
    sample: int = 0

    @property
    def label(self) -> str:
        omega = f" w={self.omega:g}" if self.omega is not None else ""
        return f"{self.planner}{omega} s{self.seed}#{self.sample}"


def format_omega(omega: Optional[float]) -> str:
    return "" if omega is None or (isinstance(omega, float) and math.isnan(omega)) else f"{float(omega):g}"


def row_key(row: dict[str, Any]) -> tuple:
    """Identity of a row: rerunning the same key replaces it."""
    return (
        row["token"], int(row["stage"]), row["planner"], format_omega(row.get("omega")),
        int(row["seed"]), int(row["sample"]), row["metric"],
    )


def variant_of(row: dict[str, Any]) -> Variant:
    omega = row.get("omega")
    omega = None if omega is None or (isinstance(omega, float) and math.isnan(omega)) else float(omega)
    return Variant(row["planner"], omega, int(row["seed"]), int(row["sample"]))


def make_row(
    token: str,
    variant: Variant,
    metric: str,
    *,
    stage: int = 1,
    log_name: str = "",
    metrics: Optional[dict[str, float]] = None,
    poses: Optional[np.ndarray] = None,
    endpoint: Optional[tuple[float, float]] = None,
    start: Optional[tuple[float, float]] = None,
    error: str = "",
) -> dict[str, Any]:
    """A typed result row; metrics not given are NaN (undefined for this version, or failed)."""
    row: dict[str, Any] = {
        "token": token, "stage": int(stage), "log_name": log_name, "planner": variant.planner,
        "omega": variant.omega, "seed": int(variant.seed), "sample": int(variant.sample), "metric": metric,
    }
    for column in ALL_METRIC_COLUMNS:
        value = (metrics or {}).get(column)
        row[column] = float(value) if value is not None else math.nan
    row["endpoint_x"], row["endpoint_y"] = endpoint if endpoint is not None else (math.nan, math.nan)
    row["start_x"], row["start_y"] = start if start is not None else (math.nan, math.nan)
    row["poses"] = None if poses is None else np.asarray(poses, dtype=np.float64)
    row["error"] = error
    return row


def _to_text(column: str, value: Any) -> str:
    if column in FLOAT_COLUMNS:
        return "" if value is None or math.isnan(float(value)) else repr(float(value))
    if column == "omega":
        return format_omega(value)
    if column == "poses":
        if value is None:
            return ""
        return json.dumps(np.round(np.asarray(value, dtype=np.float64), POSES_DECIMALS).tolist())
    if column == "error":
        return " ".join(str(value).split())  # one line per row
    return str(value)


def _from_text(column: str, text: str) -> Any:
    if column in FLOAT_COLUMNS:
        return math.nan if text == "" else float(text)
    if column == "omega":
        return None if text == "" else float(text)
    if column in ("stage", "seed", "sample"):
        return int(text)
    if column == "poses":
        return None if text == "" else np.asarray(json.loads(text), dtype=np.float64)
    return text


def write_rows(path: PathLike, rows: Iterable[dict[str, Any]]) -> Path:
    """Write all rows (atomically: temporary file, then rename), sorted by key for stable diffs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in sorted(rows, key=row_key):
            writer.writerow({column: _to_text(column, row.get(column)) for column in CSV_COLUMNS})
    os.replace(tmp, path)
    return path


def append_rows(path: PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to a CSV (header written when the file is new): crash-safe progress between batches."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({column: _to_text(column, row.get(column)) for column in CSV_COLUMNS})


def read_rows(path: PathLike) -> list[dict[str, Any]]:
    """Typed rows of a results CSV; [] when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ID_COLUMNS + ("error",) if c not in (reader.fieldnames or [])]
        if missing:
            raise ResultsFileError(path, f"missing column(s) {missing}; not a results file of this harness")
        for line, record in enumerate(reader, start=2):
            try:
                rows.append({c: _from_text(c, record.get(c) or "") for c in CSV_COLUMNS if c in record})
            except (ValueError, json.JSONDecodeError) as error:
                raise ResultsFileError(path, f"line {line}: {error}") from error
    return rows


def merge_rows(*row_lists: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Union of row lists; a later row with the same key replaces an earlier one."""
    merged: dict[tuple, dict[str, Any]] = {}
    for rows in row_lists:
        for row in rows:
            merged[row_key(row)] = row
    return list(merged.values())


def completed_keys(rows: Iterable[dict[str, Any]]) -> set[tuple]:
    """Keys scored without error (a rerun skips them; failed keys are retried)."""
    return {row_key(row) for row in rows if not row.get("error")}
