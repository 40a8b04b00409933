"""Map errors name the location / file / layer; layers in another CRS are re-projected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely

from data_pipelines.errors import MapError
from data_pipelines.maps import (
    MapFileError,
    MapLayer,
    MissingMapLayerError,
    UnknownMapLocationError,
    load_map,
    resolve_location,
)
from tests.data_pipelines.maps.gpkg_copy import copy_gpkg, copy_map_root

BOSTON = "us-ma-boston"


def _boston_gpkg(root: Path) -> Path:
    version = json.loads((root / "nuplan-maps-v1.0.json").read_text())[BOSTON]["version"]
    return root / BOSTON / version / "map.gpkg"


def test_unknown_location(maps_root):
    with pytest.raises(UnknownMapLocationError, match="atlantis"):
        load_map(maps_root, "atlantis")
    assert resolve_location("las_vegas") == "us-nv-las-vegas-strip"
    assert issubclass(UnknownMapLocationError, MapError)


def test_missing_index_and_map_file(tmp_path, maps_root, fresh_map_cache):
    with pytest.raises(MapFileError, match="nuplan-maps-v1.0.json"):
        load_map(tmp_path, BOSTON)
    root = copy_map_root(maps_root, tmp_path / "maps")
    gpkg = _boston_gpkg(root)
    gpkg.unlink()
    with pytest.raises(MapFileError, match=str(gpkg)) as info:
        load_map(root, BOSTON)
    assert info.value.location == BOSTON


def test_missing_layer_names_layer_and_file(tmp_path, maps_root, fresh_map_cache):
    root = copy_map_root(maps_root, tmp_path / "maps")
    gpkg = _boston_gpkg(root)
    source = tmp_path / "source.gpkg"
    gpkg.rename(source)
    copy_gpkg(source, gpkg, skip_layers=("walkways",))
    with pytest.raises(MissingMapLayerError, match="walkways") as info:
        load_map(root, BOSTON)
    assert info.value.layer == "walkways" and info.value.path == gpkg


def test_layer_in_other_crs_is_reprojected(tmp_path, maps_root, fresh_map_cache):
    reference = load_map(maps_root, BOSTON)
    root = copy_map_root(maps_root, tmp_path / "maps")
    gpkg = _boston_gpkg(root)
    source = tmp_path / "source.gpkg"
    gpkg.rename(source)
    to_wgs84 = pyproj.Transformer.from_crs(reference.crs, "EPSG:4326", always_xy=True)

    def lanes_in_wgs84(name, fids, wkb, columns, field_names, crs):
        if name != "lanes_polygons":
            return fids, wkb, columns, crs
        geometries = shapely.transform(shapely.from_wkb(wkb), lambda xy: np.column_stack(to_wgs84.transform(
            xy[:, 0], xy[:, 1])))
        return fids, shapely.to_wkb(geometries), columns, "EPSG:4326"

    copy_gpkg(source, gpkg, edit=lanes_in_wgs84)
    reprojected = load_map(root, BOSTON)
    for original, moved in zip(reference.get_all_map_objects(MapLayer.LANE),
                               reprojected.get_all_map_objects(MapLayer.LANE)):
        assert original.id == moved.id
        np.testing.assert_allclose(shapely.get_coordinates(moved.polygon),
                                   shapely.get_coordinates(original.polygon), atol=1e-6)
