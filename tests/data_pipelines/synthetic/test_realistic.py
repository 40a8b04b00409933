"""Realistic-scale pieces: the city grid town, lidar sweeps as the devkit reads PCD files, the realistic preset."""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.errors import SensorFileError
from data_pipelines.log_reader import load_lidar_pcd
from data_pipelines.synthetic.config import build_config
from data_pipelines.synthetic.layouts import GRID_BLOCKS, IdAllocator, build_instance
from data_pipelines.synthetic.lidar import PCD_FIELDS, sweep, write_pcd
from data_pipelines.synthetic.renderer import LIDAR2EGO_TRANSLATION
from data_pipelines.types import CAMERA_NAMES

# nuplan-devkit PointCloud.parse builds its header from exactly these keys (a PointCloudHeader NamedTuple).
DEVKIT_PCD_HEADER_KEYS = ("version", "fields", "size", "type", "count", "width", "height", "viewpoint", "points",
                          "data")


@pytest.fixture(scope="module")
def grid_town():
    return build_instance("grid", "us-ma-boston", 0, np.array([330000.0, 4690000.0]), IdAllocator(10**7),
                          np.random.default_rng(0), 450.0)


def test_grid_town_is_city_scale(grid_town):
    assert len(grid_town.lanes) + len(grid_town.connectors) >= 2000
    assert len(grid_town.intersections) == GRID_BLOCKS**2 >= 24
    assert {lc.signal_group for lc in grid_town.connectors.values()} == {0, 1, 2, 3}
    stop_ids = {sid for sid, _ in grid_town.stop_polygons}
    assert all(lc.stop_polygon_id in stop_ids for lc in grid_town.connectors.values())
    assert {lc.turn for lc in grid_town.connectors.values()} == {"straight", "left", "right"}


def test_grid_town_routes_are_connected(grid_town):
    assert grid_town.routes
    for route in grid_town.routes:
        lanes = route.lane_ids
        assert lanes[0] in grid_town.lanes and lanes[1] in grid_town.connectors
        for a, b in zip(lanes, lanes[1:]):
            assert b in grid_town.successors(a)
        assert route.roadblock_ids == [grid_town.roadblock_of(e) for e in lanes]


def _parse_like_the_devkit(raw: bytes) -> np.ndarray:
    """Header keys lower-cased until DATA, as nuplan's PointCloud.parse reads them; binary float32 rows."""
    header, offset = {}, 0
    while True:
        end = raw.index(b"\n", offset)
        line = raw[offset:end].decode("utf8").strip()
        offset = end + 1
        if line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.lower()] = values
        if key.lower() == "data":
            break
    assert tuple(header) == DEVKIT_PCD_HEADER_KEYS and header["data"] == ["binary"]
    [int(v) for v in header["viewpoint"]]  # the devkit converts the viewpoint to ints
    dtype = np.dtype([(f, np.float32) for f in header["fields"]])
    rows = np.frombuffer(raw[offset:], dtype=dtype, count=int(header["points"][0]))
    return np.stack([rows[f] for f in ("x", "y", "z", "intensity", "ring", "lidar_info")])


def test_lidar_sweep_as_the_devkit_reads_it(tmp_path):
    box = np.array([[10.0, 0.0, 0.8, 4.5, 2.0, 1.6, 0.3]])  # a car 10 m ahead of the rear axle
    points = sweep(box)
    assert points.shape[0] == len(PCD_FIELDS) and points.dtype == np.float32 and points.shape[1] > 10_000
    path = tmp_path / "log" / "MergedPointCloud" / "0123.pcd"
    write_pcd(path, points)
    np.testing.assert_array_equal(_parse_like_the_devkit(path.read_bytes()), points)
    np.testing.assert_array_equal(load_lidar_pcd(path), points)
    ego = points[:3] + LIDAR2EGO_TRANSLATION[:, None]
    ground = np.abs(ego[2]) < 1e-4
    on_box = ~ground
    assert ground.any() and on_box.any()
    # Box returns lie on the box (ego frame), within its footprint and height.
    c, s = np.cos(-0.3), np.sin(-0.3)
    dx, dy = ego[0, on_box] - 10.0, ego[1, on_box]
    local_x, local_y = c * dx - s * dy, s * dx + c * dy
    assert np.all(np.abs(local_x) <= 2.25 + 1e-3) and np.all(np.abs(local_y) <= 1.0 + 1e-3)
    assert np.all((ego[2, on_box] >= -1e-3) & (ego[2, on_box] <= 1.6 + 1e-3))
    assert np.all(np.hypot(points[0], points[1]) <= 80.0 + 1e-3)


def test_missing_lidar_file_names_the_file(tmp_path):
    with pytest.raises(SensorFileError, match="absent.pcd") as info:
        load_lidar_pcd(tmp_path / "absent.pcd", token="abc")
    assert info.value.token == "abc" and info.value.sensor == "lidar_pc"


def test_realistic_preset():
    cfg = build_config("realistic")
    assert set(cfg.rendered_cameras) == set(CAMERA_NAMES) and (cfg.image_width, cfg.image_height) == (1920, 1080)
    assert cfg.lidar and cfg.layout_kinds == ("grid",)
    default = build_config("default")
    assert not default.lidar and default.image_width == 256  # the demo keeps its small preset
