"""The per-token results CSV: one row per (token, stage, planner variant, metric version).

Rows are plain dicts with typed values in memory (floats, NaN for undefined metrics, poses as (8, 3)
arrays) and text on disk. A rerun reads the CSV back and skips every key already scored without error.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np

from navsim_eval.evaluation.errors import ResultsFileError
from navsim_eval.evaluation.metrics import ALL_METRIC_COLUMNS

PathLike = Union[str, Path]
logger = logging.getLogger(__name__)

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
    """Write all rows (atomically: synced temporary file, then rename), sorted by key for stable diffs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in sorted(rows, key=row_key):
            writer.writerow({column: _to_text(column, row.get(column)) for column in CSV_COLUMNS})
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def _rows_text(rows: Iterable[dict[str, Any]], header: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({column: _to_text(column, row.get(column)) for column in CSV_COLUMNS})
    return buffer.getvalue().encode()


def append_rows(path: PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to a CSV (header written when the file is new): crash-safe progress between batches.

    The batch is written with one ``write`` and synced; a torn tail left by an earlier interrupted write (a last
    line without its newline) is cut off first, so that new rows never continue a broken line.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(descriptor).st_size
        if size:
            size = _cut_torn_tail(descriptor, size)
        data = _rows_text(rows, header=size == 0)
        written = 0
        while written < len(data):
            written += os.write(descriptor, data[written:])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _cut_torn_tail(descriptor: int, size: int) -> int:
    """Truncate the file after its last newline; returns the new size."""
    tail = os.pread(descriptor, min(size, 1 << 16), max(0, size - (1 << 16)))
    if tail.endswith(b"\n"):
        return size
    end = size
    while True:  # search backwards for the last newline, in chunks
        start = max(0, end - (1 << 16))
        chunk = os.pread(descriptor, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        if start == 0:
            keep = 0
            break
        end = start
    os.ftruncate(descriptor, keep)
    return keep


def read_rows(path: PathLike, *, discard_torn_last_row: bool = False) -> list[dict[str, Any]]:
    """Typed rows of a results CSV; [] when the file does not exist.

    ``discard_torn_last_row``: a last row that an interrupted append left incomplete (no final newline, missing
    fields, or unparsable) is dropped with a warning instead of raising, so that its key is scored again.
    """
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        text = handle.read()
    lines = text.splitlines(keepends=True)
    torn_tail = bool(lines) and not lines[-1].endswith("\n")
    rows = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in ID_COLUMNS + ("error",) if c not in (reader.fieldnames or [])]
    if missing:
        raise ResultsFileError(path, f"missing column(s) {missing}; not a results file of this harness")
    records = list(reader)
    for index, record in enumerate(records):
        last = index == len(records) - 1
        try:
            if None in record.values() or None in record:
                raise ValueError(f"{len([v for v in record.values() if v is not None])} of {len(CSV_COLUMNS)} "
                                 "fields (incomplete row)")
            if last and torn_tail:
                raise ValueError("the row has no line end (an interrupted write)")
            rows.append({c: _from_text(c, record.get(c) or "") for c in CSV_COLUMNS if c in record})
        except (ValueError, json.JSONDecodeError) as error:
            line = reader.line_num if last else index + 2
            if last and discard_torn_last_row:
                logger.warning("results file %s: last row (line %d) discarded, it will be scored again: %s",
                               path, line, error)
                break
            raise ResultsFileError(path, f"row {index + 1}: {error}") from error
    return rows


@contextlib.contextmanager
def results_lock(results_csv: PathLike, rank: int = 0) -> Iterator[None]:
    """Hold the write lock of a results CSV for one rank of a run; a second run writing the same file is refused.

    The lock is an ``flock`` on a hidden file next to the CSV: the system releases it when the process ends,
    however it ends, so a crashed run never leaves a stale lock behind.
    """
    results_csv = Path(results_csv)
    results_csv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = results_csv.with_name(f".{results_csv.stem}.rank{rank}.lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(descriptor)
        raise ResultsFileError(
            results_csv, f"another evaluation ({holder}) is writing these results (rank {rank}); wait for it to "
            "finish or choose another output folder") from None
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}, started "
                              f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


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
