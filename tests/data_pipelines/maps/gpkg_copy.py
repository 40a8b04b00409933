"""Helpers that write modified copies of a golden map root (tests only)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pyogrio
from pyogrio import raw

LayerEdit = Callable[[str, np.ndarray, Optional[np.ndarray], list[np.ndarray], list[str], Optional[str]],
                     tuple[np.ndarray, Optional[np.ndarray], list[np.ndarray], Optional[str]]]


def copy_gpkg(
    source: Path, target: Path, skip_layers: tuple[str, ...] = (), edit: Optional[LayerEdit] = None
) -> None:
    """Rewrite `source` layer by layer into `target`, keeping feature ids; optionally drop or edit layers."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for name, geometry_type in pyogrio.list_layers(source):
        if name in skip_layers:
            continue
        meta, fids, wkb, fields = raw.read(source, layer=name, return_fids=True)
        field_names = [str(f) for f in meta["fields"]]
        columns = list(fields)
        crs = meta.get("crs")
        if edit is not None:
            fids, wkb, columns, crs = edit(name, fids, wkb, columns, field_names, crs)
        raw.write(
            target, wkb, [np.asarray(fids, dtype=np.int64)] + columns, ["fid"] + field_names, layer=name,
            driver="GPKG", geometry_type=geometry_type if wkb is not None else None, crs=crs if wkb is not None else None,
            append=target.exists(),
        )


def copy_map_root(golden_maps: Path, target_root: Path) -> Path:
    """Copy a map root (index JSON + every location folder) to `target_root`."""
    shutil.copytree(golden_maps, target_root)
    return target_root
