"""Per-token CSV: typed round trip, resume keys, append."""

from __future__ import annotations

import math

import numpy as np
import pytest

from navsim_eval.evaluation.errors import ResultsFileError
from navsim_eval.evaluation.results import (
    Variant, append_rows, completed_keys, make_row, merge_rows, read_rows, results_lock, row_key, write_rows,
)


def test_round_trip_keeps_types(tmp_path):
    poses = np.arange(24, dtype=np.float64).reshape(8, 3) / 7
    rows = [
        make_row("t1", Variant("dipole", 0.5, 1, 0), "v1", metrics={"score": 0.75, "comfort": 1.0}, poses=poses,
                 endpoint=(1.5, 2.5), start=(0.0, 1.0), log_name="log"),
        make_row("t2", Variant("human"), "v2", stage=2, error="planner failed:\nboom"),
    ]
    path = write_rows(tmp_path / "r.csv", rows)
    loaded = {r["token"]: r for r in read_rows(path)}
    assert loaded["t1"]["omega"] == 0.5 and loaded["t1"]["seed"] == 1 and loaded["t1"]["score"] == 0.75
    assert math.isnan(loaded["t1"]["lane_keeping"]) and loaded["t1"]["endpoint_y"] == 2.5
    np.testing.assert_allclose(loaded["t1"]["poses"], poses, atol=1e-6)
    assert loaded["t2"]["omega"] is None and loaded["t2"]["stage"] == 2 and loaded["t2"]["poses"] is None
    assert loaded["t2"]["error"] == "planner failed: boom"
    assert {row_key(r) for r in rows} == {row_key(r) for r in loaded.values()}


def test_completed_keys_exclude_failures_and_merge_replaces(tmp_path):
    ok = make_row("t1", Variant("cv"), "v1", metrics={"score": 1.0})
    bad = make_row("t2", Variant("cv"), "v1", error="x")
    assert completed_keys([ok, bad]) == {row_key(ok)}
    fixed = make_row("t2", Variant("cv"), "v1", metrics={"score": 0.5})
    merged = merge_rows([ok, bad], [fixed])
    assert len(merged) == 2 and completed_keys(merged) == {row_key(ok), row_key(fixed)}
    path = tmp_path / "a.csv"
    append_rows(path, [ok])
    append_rows(path, [fixed])
    assert [r["token"] for r in read_rows(path)] == ["t1", "t2"]


def test_foreign_csv_is_rejected(tmp_path):
    path = tmp_path / "foreign.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ResultsFileError, match="foreign.csv.*missing column"):
        read_rows(path)


def _torn_file(tmp_path):
    """Two complete rows, then a third cut inside its poses (as a kill during the append leaves it)."""
    poses = np.full((8, 3), 4689998.34)
    rows = [make_row(f"t{i}", Variant("cv"), "v1", metrics={"score": 1.0}, poses=poses, endpoint=(4689998.34, 1.0))
            for i in range(3)]
    path = tmp_path / "partial.csv"
    append_rows(path, rows[:2])
    full = path.read_bytes()
    append_rows(path, rows[2:])
    third = path.read_bytes()[len(full):]
    return path, full, third


@pytest.mark.parametrize("cut", ["inside_poses", "inside_error", "missing_newline"])
def test_a_torn_last_row_is_never_read_as_scored(tmp_path, caplog, cut):
    path, full, third = _torn_file(tmp_path)
    keep = {"inside_poses": third.index(b"4689998.3") + 5, "inside_error": len(third) - 3,
            "missing_newline": len(third) - 2}[cut]
    path.write_bytes(full + third[:keep])
    with pytest.raises(ResultsFileError, match="partial.csv: row 3"):
        read_rows(path)
    with caplog.at_level("WARNING"):
        rows = read_rows(path, discard_torn_last_row=True)
    assert [r["token"] for r in rows] == ["t0", "t1"]
    assert "last row (line 4) discarded, it will be scored again" in caplog.text


def test_append_after_a_torn_row_starts_on_a_fresh_line(tmp_path):
    path, full, third = _torn_file(tmp_path)
    path.write_bytes(full + third[:40])
    append_rows(path, [make_row("t9", Variant("cv"), "v1", metrics={"score": 0.5})])
    assert [r["token"] for r in read_rows(path)] == ["t0", "t1", "t9"]


def test_a_second_writer_of_the_same_results_is_refused(tmp_path):
    out = tmp_path / "r.csv"
    with results_lock(out):
        with pytest.raises(ResultsFileError, match=r"r\.csv: another evaluation \(pid \d+ .*\) is writing these"):
            with results_lock(out):
                pass
        with results_lock(out, rank=1):  # another rank of the same run has its own lock
            pass
    with results_lock(out):  # released at the end
        pass
