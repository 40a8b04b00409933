"""Low-level GPKG access: one layer as a table of feature ids, attribute columns and shapely geometries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import shapely
from pyogrio import raw

from data_pipelines.maps.errors import MapFileError, MissingMapLayerError


@dataclass(frozen=True)
class LayerTable:
    """A GPKG layer in file order: `fids` (feature ids as strings), `columns` and `geometries`."""

    name: str
    fids: tuple[str, ...]
    columns: dict[str, np.ndarray]
    geometries: Optional[np.ndarray]  # object array of shapely geometries, None for attribute-only layers

    def __len__(self) -> int:
        return len(self.fids)

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]


def id_to_str(value: object) -> Optional[str]:
    """A map id (int, integral float or string) as a string; None for missing ids (NaN, None, negative)."""
    if value is None:
        return None
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode()
    if isinstance(value, str):
        text = value.strip()
        if text == "" or text.lower() in ("nan", "none", "null"):
            return None
        try:
            number = float(text)
        except ValueError:
            return text
        return None if number < 0 or not np.isfinite(number) else (str(int(number)) if number.is_integer() else text)
    number = float(value)  # type: ignore[arg-type]
    if not np.isfinite(number) or number < 0:
        return None
    return str(int(number)) if number.is_integer() else str(value)


def list_gpkg_layers(path: Path, location: str) -> set[str]:
    """Names of the layers in a GPKG file (MapFileError if the file is missing or unreadable)."""
    if not path.is_file():
        raise MapFileError(path, "map file does not exist", location=location)
    try:
        import pyogrio

        return {str(name) for name, _ in pyogrio.list_layers(path)}
    except Exception as exc:  # pyogrio raises several driver-specific errors
        raise MapFileError(path, f"cannot read GPKG file: {exc}", location=location) from exc


def read_layer(
    path: Path,
    layer: str,
    location: str,
    *,
    required_columns: tuple[str, ...] = (),
    target_crs: Optional[str] = None,
) -> LayerTable:
    """Read one layer (file order); re-project its geometries to `target_crs` when the layer's CRS differs."""
    try:
        meta, fids, wkb, fields = raw.read(path, layer=layer, return_fids=True, force_2d=True)
    except Exception as exc:
        raise MissingMapLayerError(path, layer, location, f"cannot read layer: {exc}") from exc
    names = [str(n) for n in meta["fields"]]
    columns = {name: np.asarray(values) for name, values in zip(names, fields)}
    missing = [c for c in required_columns if c not in columns]
    if missing:
        raise MissingMapLayerError(path, layer, location, f"layer lacks column(s) {', '.join(missing)}")
    geometries = None
    if wkb is not None:
        geometries = shapely.from_wkb(wkb)
        layer_crs = meta.get("crs")
        if target_crs is not None and layer_crs is not None and not _same_crs(layer_crs, target_crs):
            geometries = _reproject(geometries, layer_crs, target_crs)
    return LayerTable(
        name=layer,
        fids=tuple(str(int(f)) for f in np.asarray(fids)),
        columns=columns,
        geometries=geometries,
    )


def _same_crs(a: str, b: str) -> bool:
    if a.strip().upper() == b.strip().upper():
        return True
    import pyproj

    return pyproj.CRS.from_user_input(a) == pyproj.CRS.from_user_input(b)


def _reproject(geometries: np.ndarray, source: str, target: str) -> np.ndarray:
    import pyproj

    transformer = pyproj.Transformer.from_crs(source, target, always_xy=True)

    def transform(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometries, transform)
