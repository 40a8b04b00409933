"""Project-wide fixtures: the reference folder `shared/` beside the repository checkout.

Tests that need it fail (never skip) when it is missing: CI clones the repository with `shared/` beside it.
Set DIPOLE_SHARED_DIR to use a reference folder elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("DIPOLE_SHARED_DIR", REPO_ROOT.parent / "shared"))
GOLDEN_DIR = SHARED_DIR / "golden" / "pdm"


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        pytest.fail(f"{what} not found at {path} (expected the folder shared/ beside the repository checkout, or DIPOLE_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only reference folder `shared/` beside the checkout."""
    return _require_dir(SHARED_DIR, "shared reference folder")


@pytest.fixture(scope="session")
def golden_dir(shared_dir: Path) -> Path:
    """Golden PDM fixtures produced by the official devkit (`shared/golden/pdm`)."""
    return _require_dir(shared_dir / "golden" / "pdm", "golden PDM folder")
