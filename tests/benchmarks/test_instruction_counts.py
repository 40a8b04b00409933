"""benchmarks/instruction_counts.py: callgrind counts of one cache pass and one scoring pass, split by a dump."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO.parent / "shared" / "golden" / "pdm"

pytestmark = pytest.mark.skipif(shutil.which("callgrind_control") is None, reason="valgrind is not installed")


def test_counts_are_repeatable_and_split_into_caches_and_trajectories():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from instruction_counts import measure

    first = measure(GOLDEN, "synthetic_public", 20, 2, "v1", 4)
    second = measure(GOLDEN, "synthetic_public", 20, 2, "v1", 4)
    # a cache build (roll-out of the reference planner, observation, file) costs far more than one trajectory
    assert 1e6 < first["trajectory"] < first["cache"] < 1e9
    for kind in ("cache", "trajectory"):
        assert abs(first[kind] / second[kind] - 1.0) < 0.01, (kind, first, second)
