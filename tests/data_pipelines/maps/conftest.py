"""Fixtures of the map tests: the golden map root and modified copies of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_pipelines.maps import clear_map_cache


@pytest.fixture(scope="session")
def maps_root(golden_dir: Path) -> Path:
    return golden_dir / "maps"


@pytest.fixture()
def fresh_map_cache():
    """Forget cached maps before and after a test that builds its own map roots."""
    clear_map_cache()
    yield
    clear_map_cache()
