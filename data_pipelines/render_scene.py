"""Render one scene (cameras + BEV with map, boxes and the human trajectory) to a PNG.

    python -m data_pipelines.render_scene --data-root DIR --split NAME --token TOKEN --out scene.png

Paths not given fall back to OPENSCENE_DATA_ROOT / NUPLAN_MAPS_ROOT / NUPLAN_MAP_VERSION (as the devkit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from data_pipelines.errors import DataError, SplitError, UnknownTokenError
from data_pipelines.paths import DataPaths
from data_pipelines.scene import Scene, SensorConfig
from data_pipelines.scene_filter import SceneFilter
from data_pipelines.scene_loader import SceneLoader
from data_pipelines.types import DEFAULT_SAMPLING
from data_pipelines.visualize import DEFAULT_BEV_RADIUS_M, render_scene

EXIT_DATA_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_pipelines.render_scene", description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=None, help="dataset root (default: $OPENSCENE_DATA_ROOT)")
    parser.add_argument("--split", required=True, help="data split folder under navsim_logs/ and sensor_blobs/")
    parser.add_argument("--token", required=True, help="scene token (= current frame token)")
    parser.add_argument("--out", type=Path, required=True, help="output PNG")
    parser.add_argument(
        "--maps-root", type=Path, default=None, help="map root (default: $NUPLAN_MAPS_ROOT or <root>/maps)"
    )
    parser.add_argument("--map-version", default=None, help="map index name (default: $NUPLAN_MAP_VERSION)")
    parser.add_argument("--num-history-frames", type=int, default=SceneFilter.num_history_frames)
    parser.add_argument("--num-future-frames", type=int, default=SceneFilter.num_future_frames)
    parser.add_argument("--no-cameras", action="store_true", help="skip camera images (BEV only)")
    parser.add_argument("--no-map", action="store_true", help="do not draw the map")
    parser.add_argument("--radius", type=float, default=DEFAULT_BEV_RADIUS_M, help="BEV half-size [m]")
    return parser


def load_scene(paths: DataPaths, split: str, token: str, args: argparse.Namespace) -> Scene:
    """The window whose current frame is `token` (any interval, with or without route)."""
    scene_filter = SceneFilter(
        num_history_frames=args.num_history_frames,
        num_future_frames=args.num_future_frames,
        frame_interval=1,
        has_route=False,
        max_scenes=1,
        tokens=[token],
    )
    sensor_config = SensorConfig.build_no_sensors() if args.no_cameras else SensorConfig.front_three_current(
        args.num_history_frames
    )
    log_path = paths.navsim_log_path(split)
    try:
        loader = SceneLoader(log_path, paths.sensor_blobs_path(split), scene_filter, sensor_config)
    except SplitError as exc:
        raise UnknownTokenError(token, f"the scene windows of {log_path}") from exc
    return loader.get_scene_from_token(token)


def load_scene_map(paths: DataPaths, scene: Scene, explicit: bool) -> Optional[Any]:
    """The scene's map, or None when no map root exists and none was asked for explicitly."""
    from data_pipelines.maps import load_map

    if paths.maps_root is None or (not explicit and not paths.maps_root.is_dir()):
        print(f"no map drawn: map root {paths.maps_root} not found", file=sys.stderr)
        return None
    return load_map(paths.maps_root, scene.scene_metadata.map_name, paths.map_version)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = DataPaths.from_env(args.data_root, args.maps_root, args.map_version)
        scene = load_scene(paths, args.split, args.token, args)
        map_api = None if args.no_map else load_scene_map(paths, scene, explicit=args.maps_root is not None)
        num_poses = min(DEFAULT_SAMPLING.num_poses, scene.scene_metadata.num_future_frames)
        trajectories = {"human": scene.get_future_trajectory(num_poses).poses} if num_poses > 0 else None
        out = render_scene(scene, map_api, args.out, trajectories=trajectories, radius=args.radius)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA_ERROR
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
