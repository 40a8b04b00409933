"""Bird's-eye-view and camera plots of a scene (matplotlib, Agg; no pyplot global state).

The BEV is drawn in the current rear-axle frame with x (forward) pointing up and y (left) pointing left:
screen coordinates are (-y, x). Map objects come from a `data_pipelines.maps.NuPlanMap`-like object
(`get_proximal(layer, point, radius)`, objects with `.id` / `.geometry` / `.baseline_path`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

import matplotlib

matplotlib.use("Agg")  # headless rendering; harmless when a backend is already active elsewhere

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Polygon as PolygonPatch  # noqa: E402

from data_pipelines.geometry import absolute_to_relative_poses  # noqa: E402
from data_pipelines.scene import Scene  # noqa: E402
from data_pipelines.types import AGENT_TYPES, STATIC_OBJECT_TYPES  # noqa: E402

PathLike = Union[str, Path]

# Chrysler Pacifica footprint (spec pdm_score.md §1.2): the box is centred this far ahead of the rear axle.
EGO_LENGTH_M = 5.176
EGO_WIDTH_M = 2.297
EGO_REAR_AXLE_TO_CENTER_M = 1.461

DEFAULT_BEV_RADIUS_M = 50.0
CAMERAS_SHOWN = ("CAM_L0", "CAM_F0", "CAM_R0")
SCORE_CMAP = "RdYlGn"

OBJECT_COLORS = {
    "vehicle": "#1f77b4",
    "pedestrian": "#d62728",
    "bicycle": "#9467bd",
    "traffic_cone": "#ff7f0e",
    "barrier": "#8c564b",
    "czone_sign": "#bcbd22",
    "generic_object": "#7f7f7f",
}
EGO_COLOR = "#2ca02c"
TRAJECTORY_COLORS = ("#2ca02c", "#d62728", "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")

# (layer name, face colour, edge colour, z-order); layer names are `data_pipelines.maps.MapLayer` values.
MAP_AREA_STYLES = (
    ("ROADBLOCK", "#e8e8e8", "#c8c8c8", 0.0),
    ("ROADBLOCK_CONNECTOR", "#e8e8e8", "#c8c8c8", 0.0),
    ("CARPARK_AREA", "#f3e6c8", "#d9c79c", 0.1),
    ("INTERSECTION", "#dddde8", "#b8b8cc", 0.2),
    ("CROSSWALK", "#ffffff", "#9a9a9a", 0.3),
)
ROUTE_FACE_COLOR = "#9fc5ff"
ROUTE_ZORDER = 0.35  # above intersections and crosswalks, below lanes, boxes and trajectories
ROUTE_ALPHA = 0.55
LANE_EDGE_COLOR = "#a8a8a8"
RED_LIGHT_COLOR = "#e31a1c"


def _to_screen(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ego-frame (x forward, y left) to screen (right, up) coordinates."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return -xy[:, 1], xy[:, 0]


def _box_corners(x: float, y: float, heading: float, length: float, width: float) -> np.ndarray:
    c, s = np.cos(heading), np.sin(heading)
    half = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64) * [length / 2.0, width / 2.0]
    return np.stack([x + c * half[:, 0] - s * half[:, 1], y + s * half[:, 0] + c * half[:, 1]], axis=1)


def _draw_box(ax: Axes, corners: np.ndarray, color: str, zorder: float, alpha: float = 0.6) -> None:
    u, v = _to_screen(corners)
    ax.add_patch(PolygonPatch(np.stack([u, v], 1), closed=True, facecolor=color, edgecolor="black",
                              linewidth=0.6, alpha=alpha, zorder=zorder))
    front = (corners[0] + corners[1]) / 2.0
    centre = corners.mean(axis=0)
    fu, fv = _to_screen(np.stack([centre, front]))
    ax.plot(fu, fv, color="black", linewidth=0.8, zorder=zorder + 0.01)


def _polygons(geometry: Any) -> list:
    if geometry is None or geometry.is_empty:
        return []
    if geometry.geom_type == "Polygon":
        return [geometry]
    return [g for g in getattr(geometry, "geoms", []) if g.geom_type == "Polygon"]


class _LocalFrame:
    """Global (map) -> current ego frame transform for shapely geometries and point arrays."""

    def __init__(self, origin: np.ndarray):
        self.origin = np.asarray(origin, dtype=np.float64)

    def points(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        poses = np.concatenate([xy, np.zeros((len(xy), 1))], axis=1)
        return absolute_to_relative_poses(self.origin, poses)[:, :2]

    def geometry(self, geometry: Any) -> Any:
        return shapely.transform(geometry, self.points)


def _draw_area(
    ax: Axes, frame: _LocalFrame, geometry: Any, face: str, edge: str, zorder: float, alpha: float = 1.0
) -> None:
    for polygon in _polygons(frame.geometry(geometry)):
        u, v = _to_screen(np.asarray(polygon.exterior.coords)[:, :2])
        ax.add_patch(PolygonPatch(np.stack([u, v], 1), closed=True, facecolor=face, edgecolor=edge,
                                  linewidth=0.6, zorder=zorder, alpha=alpha))


def _draw_line(ax: Axes, frame: _LocalFrame, line: Any, zorder: float, **style: Any) -> None:
    if line is None or line.is_empty:
        return
    u, v = _to_screen(frame.points(np.asarray(line.coords)[:, :2]))
    ax.plot(u, v, zorder=zorder, **style)


def plot_map(ax: Axes, scene: Scene, map_api: Any, radius: float = DEFAULT_BEV_RADIUS_M) -> None:
    """Roadblocks (route highlighted), carparks, intersections, crosswalks, lanes and lane connectors."""
    from data_pipelines.maps import MapLayer  # the map package is optional for plots without a map

    origin = scene.current_frame.ego_status.ego_pose
    frame = _LocalFrame(origin)
    point = (float(origin[0]), float(origin[1]))
    query_radius = radius * np.sqrt(2.0)  # the square view's corners
    route = set(scene.current_frame.roadblock_ids)
    for layer_name, face, edge, zorder in MAP_AREA_STYLES:
        for obj in map_api.get_proximal(MapLayer(layer_name), point, query_radius):
            if layer_name.startswith("ROADBLOCK") and obj.id in route:
                _draw_area(ax, frame, obj.geometry, ROUTE_FACE_COLOR, edge, ROUTE_ZORDER, ROUTE_ALPHA)
            else:
                _draw_area(ax, frame, obj.geometry, face, edge, zorder)
    red_connectors = {str(lane) for lane, is_red in scene.current_frame.traffic_lights if is_red}
    for layer in (MapLayer.LANE, MapLayer.LANE_CONNECTOR):
        for edge_obj in map_api.get_proximal(layer, point, query_radius):
            for polygon in _polygons(frame.geometry(edge_obj.geometry)):
                u, v = _to_screen(np.asarray(polygon.exterior.coords)[:, :2])
                ax.plot(u, v, color=LANE_EDGE_COLOR, linewidth=0.5, zorder=0.4)
            baseline = getattr(edge_obj, "baseline_path", None)
            if baseline is not None:
                red = layer == MapLayer.LANE_CONNECTOR and edge_obj.id in red_connectors
                _draw_line(ax, frame, baseline.linestring, 0.5, color=RED_LIGHT_COLOR if red else "#b0b0b0",
                           linewidth=1.6 if red else 0.6, linestyle="-" if red else "--")


def plot_objects(ax: Axes, scene: Scene) -> None:
    """Annotated boxes of the current frame (ego frame), coloured by class."""
    annotations = scene.current_frame.annotations
    if annotations is None:
        return
    for box, name in zip(annotations.boxes, annotations.names):
        color = OBJECT_COLORS.get(name, OBJECT_COLORS["generic_object"])
        zorder = 2.0 if name in AGENT_TYPES else 1.9 if name in STATIC_OBJECT_TYPES else 1.8
        _draw_box(ax, _box_corners(box[0], box[1], box[6], box[3], box[4]), color, zorder)


def plot_ego(ax: Axes) -> None:
    """The ego footprint at the origin (rear axle), heading +x."""
    _draw_box(ax, _box_corners(EGO_REAR_AXLE_TO_CENTER_M, 0.0, 0.0, EGO_LENGTH_M, EGO_WIDTH_M), EGO_COLOR, 3.0, 0.8)


def plot_trajectories(
    ax: Axes,
    trajectories: Mapping[str, np.ndarray],
    scores: Optional[Mapping[str, float]] = None,
    cmap: str = SCORE_CMAP,
) -> Optional[ScalarMappable]:
    """Trajectories (name -> (N, 3) poses in the rear-axle frame) from the origin; coloured by score if given."""
    mappable = None
    if scores:
        mappable = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colormaps[cmap])
    for index, (name, poses) in enumerate(trajectories.items()):
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] < 2:
            raise ValueError(f"trajectory {name!r}: expected (N, 3) poses, got shape {poses.shape}")
        xy = np.concatenate([np.zeros((1, 2)), poses[:, :2]], axis=0)
        u, v = _to_screen(xy)
        if mappable is not None and name in scores:
            score = float(scores[name])
            color = mappable.to_rgba(score)
            label = f"{name} ({score:.2f})"
        else:
            color = TRAJECTORY_COLORS[index % len(TRAJECTORY_COLORS)]
            label = name
        ax.plot(u, v, color=color, linewidth=1.8, marker="o", markersize=2.5, label=label, zorder=4.0)
    return mappable


def plot_bev(
    ax: Axes,
    scene: Scene,
    map_api: Any = None,
    trajectories: Optional[Mapping[str, np.ndarray]] = None,
    scores: Optional[Mapping[str, float]] = None,
    radius: float = DEFAULT_BEV_RADIUS_M,
) -> Optional[ScalarMappable]:
    """BEV of the current frame: map (if given, else `scene.map_api`), boxes, ego, trajectories.

    Returns the score colour mapping when `scores` are given (for a colorbar), else None.
    """
    map_api = map_api if map_api is not None else scene.map_api
    if map_api is not None:
        plot_map(ax, scene, map_api, radius)
    plot_objects(ax, scene)
    plot_ego(ax)
    mappable = plot_trajectories(ax, trajectories or {}, scores)
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_aspect("equal")
    ax.set_xlabel("right [m]")
    ax.set_ylabel("forward [m]")
    ax.set_title(f"{scene.scene_metadata.log_name}\n{scene.token}", fontsize=8)
    if trajectories:
        ax.legend(loc="upper right", fontsize=6)
    return mappable


def plot_cameras(axes: list[Axes], scene: Scene, cameras: tuple[str, ...] = CAMERAS_SHOWN) -> None:
    """Current-frame images of `cameras` (placeholder text where an image was not loaded)."""
    for ax, name in zip(axes, cameras):
        image = scene.current_frame.cameras.get(name).image
        if image is not None:
            ax.imshow(image)
        else:
            ax.text(0.5, 0.5, f"{name}\n(not loaded)", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()


def render_scene(
    scene: Scene,
    map_api: Any,
    out_png: PathLike,
    trajectories: Optional[Mapping[str, np.ndarray]] = None,
    scores: Optional[Mapping[str, float]] = None,
    radius: float = DEFAULT_BEV_RADIUS_M,
    dpi: int = 100,
) -> Path:
    """Save a figure with CAM_L0 / CAM_F0 / CAM_R0 above the BEV; returns the PNG path."""
    figure = Figure(figsize=(12, 11), layout="constrained")
    grid = figure.add_gridspec(2, 3, height_ratios=[1, 3])
    camera_axes = [figure.add_subplot(grid[0, i]) for i in range(len(CAMERAS_SHOWN))]
    bev_ax = figure.add_subplot(grid[1, :])
    plot_cameras(camera_axes, scene)
    mappable = plot_bev(bev_ax, scene, map_api, trajectories, scores, radius)
    if mappable is not None:
        figure.colorbar(mappable, ax=bev_ax, label="score", shrink=0.7)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=dpi)
    return out_png
