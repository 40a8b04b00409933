"""vla.training.bev_targets: the BEV decoder's targets from a scene's map and boxes, and the dataset wrapper."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import shapely
import torch

from data_pipelines.maps import MapLayer, load_map
from data_pipelines.scene import SensorConfig
from vla.configuration_dipole import BevSettings
from vla.errors import VLAInputError
from vla.training.bev_targets import BevTargetItems, bev_target, drivable_area_raster, objects_raster
from vla.training.data import SceneBatcher

from tests.vla.training.helpers import generate_tiny_world, split_items

SETTINGS = BevSettings(cells=8, cell_size_m=4.0, behind_m=6.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_tiny_world(tmp_path_factory.mktemp("tiny_world"))


@pytest.fixture(scope="module")
def dataset(world):
    paths, _, items = split_items(world, "synthetic_train", max_scenes=6)
    return paths, items


def _scene(paths, items, index=0):
    scene = items.loader.get_scene_from_token(items.tokens[index], sensor_config=SensorConfig.build_no_sensors())
    scene.map_api = load_map(paths.maps_root, scene.scene_metadata.map_name, paths.map_version)
    return scene


def test_drivable_area_matches_the_map_polygons_around_the_ego(dataset):
    paths, items = dataset
    for index in range(len(items)):
        scene = _scene(paths, items, index)
        raster = drivable_area_raster(scene, SETTINGS)
        x, y, heading = scene.current_frame.ego_status.ego_pose
        local = SETTINGS.cell_centers()
        c, s = np.cos(heading), np.sin(heading)
        world_xy = np.c_[x + c * local[:, 0] - s * local[:, 1], y + s * local[:, 0] + c * local[:, 1]]
        polygons = [obj.polygon for layer in (MapLayer.ROADBLOCK, MapLayer.INTERSECTION, MapLayer.CARPARK_AREA)
                    for obj in scene.map_api.get_proximal(layer, (x, y), 200.0)]
        inside = shapely.contains_xy(shapely.union_all(polygons), world_xy[:, 0], world_xy[:, 1])
        np.testing.assert_array_equal(raster.ravel(), inside)
        assert raster.any() and not raster.all()  # a road with something beside it


def test_objects_mark_the_cells_a_box_overlaps(dataset):
    paths, items = dataset
    scene = _scene(paths, items)
    annotations = scene.current_frame.annotations
    annotations.boxes = np.array([[10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0], [-2.0, -8.0, 0.0, 0.5, 0.5, 1.8, 0.7]])
    raster = objects_raster(scene, SETTINGS).ravel()
    centers = SETTINGS.cell_centers()
    car = (np.abs(centers[:, 0] - 10) < 2 + 2) & (np.abs(centers[:, 1]) < 1 + 2)  # squares overlapping 8..12 x -1..1
    assert car.sum() == 4 and raster[car].all()
    pedestrian = np.abs(centers - [-2.0, -8.0]).max(axis=1) <= 2 + 0.25 * np.sqrt(2)  # at a corner of 4 cells
    assert pedestrian.sum() == 4 and raster[pedestrian].all()  # smaller than a cell, still marked where it stands
    assert raster.sum() == 8
    annotations.boxes = np.zeros((0, 7))
    assert not objects_raster(scene, SETTINGS).any()
    scene.current_frame.annotations = None
    with pytest.raises(VLAInputError, match="annotated boxes"):
        objects_raster(scene, SETTINGS)


def test_items_carry_the_target_through_pickling_and_batches(dataset):
    paths, items = dataset
    wrapped = BevTargetItems(items, SETTINGS, paths)
    assert wrapped.tokens == items.tokens and wrapped.loader is items.loader and len(wrapped) == len(items)
    copy = pickle.loads(pickle.dumps(wrapped))  # what DataLoader workers receive
    item = copy[1]
    np.testing.assert_array_equal(item["bev_target"], bev_target(_scene(paths, items, 1), SETTINGS))
    assert item["bev_target"].shape == (2, 8, 8) and item["bev_target"].dtype == np.uint8

    from vla.testing import tiny_model

    model = tiny_model("tiny-florence2", overrides=["bev.cells=8", "bev.cell_size_m=4.0", "bev.behind_m=6.0"])
    batcher = SceneBatcher(wrapped, model.processor, torch.device("cpu"), seed=0, num_workers=1)
    with batcher.stream([[0, 2], [3, 1]]) as stream:
        first = stream.take([0, 2])
        assert torch.equal(first["bev_target"], torch.from_numpy(np.stack([wrapped[0]["bev_target"],
                                                                           wrapped[2]["bev_target"]])))
        assert model.loss_il(first, bev_weight=1.0).isfinite()
