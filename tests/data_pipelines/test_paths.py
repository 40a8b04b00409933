"""DataPaths: devkit environment variables with explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_pipelines.paths import DEFAULT_MAP_VERSION, DataPathError, DataPaths


def test_from_env_reads_devkit_variables(tmp_path):
    env = {"OPENSCENE_DATA_ROOT": str(tmp_path / "data"), "NUPLAN_MAPS_ROOT": str(tmp_path / "m"),
           "NUPLAN_MAP_VERSION": "v9"}
    paths = DataPaths.from_env(environ=env)
    assert paths.openscene_data_root == tmp_path / "data"
    assert paths.maps_root == tmp_path / "m"
    assert paths.map_version == "v9"
    assert paths.navsim_log_path("test") == tmp_path / "data" / "navsim_logs" / "test"
    assert paths.sensor_blobs_path("test") == tmp_path / "data" / "sensor_blobs" / "test"


def test_arguments_override_environment(tmp_path):
    env = {"OPENSCENE_DATA_ROOT": "/env/root", "NUPLAN_MAPS_ROOT": "/env/maps", "NUPLAN_MAP_VERSION": "env"}
    paths = DataPaths.from_env(tmp_path, tmp_path / "maps2", "mine", environ=env)
    assert (paths.openscene_data_root, paths.maps_root, paths.map_version) == (tmp_path, tmp_path / "maps2", "mine")


def test_maps_default_to_data_root_and_version_default():
    paths = DataPaths.from_env(environ={"OPENSCENE_DATA_ROOT": "/r"})
    assert paths.maps_root == Path("/r/maps")
    assert paths.map_version == DEFAULT_MAP_VERSION == "nuplan-maps-v1.0"


def test_missing_root_raises_naming_the_variable():
    paths = DataPaths.from_env(environ={})
    assert paths.openscene_data_root is None and paths.maps_root is None
    with pytest.raises(DataPathError, match="OPENSCENE_DATA_ROOT"):
        paths.navsim_log_path("mini")
    with pytest.raises(DataPathError, match="NUPLAN_MAPS_ROOT"):
        paths.require_maps_root()
