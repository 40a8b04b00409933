"""Helpers of the data-layer tests: writing sensor blobs and log files into tmp folders."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

TEST_IMAGE_SIZE = (24, 16)  # (width, height): tiny JPEGs keep the tests fast


def write_camera_images(
    blobs_root: Path, frames: Iterable[dict[str, Any]], cameras: Iterable[str], seed: int = 0
) -> dict[tuple[str, str], np.ndarray]:
    """Write a small random JPEG at every frame's `cams[CAM].data_path`; returns the decoded pixels per
    (token, camera) as PIL reads them back (JPEG is lossy)."""
    rng = np.random.default_rng(seed)
    written = {}
    for frame in frames:
        for camera in cameras:
            path = blobs_root / frame["cams"][camera]["data_path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size=(TEST_IMAGE_SIZE[1], TEST_IMAGE_SIZE[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, format="JPEG")
            written[(frame["token"], camera)] = np.array(Image.open(path))
    return written


def write_log(path: Path, frames: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(frames, handle)
    return path


class _RunsCommand:
    """Pickles as a call of ``os.system``: what a malicious file would contain."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def code_running_pickle(marker: Path, wrap=lambda payload: [{"token": payload}]) -> bytes:
    """Pickle bytes that, loaded with plain ``pickle.load``, create the file `marker` (via ``os.system``).

    `wrap` places the payload inside the shape of the format under test."""
    return pickle.dumps(wrap(_RunsCommand(f"touch {marker}")))
