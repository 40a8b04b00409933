"""Metric cache: everything the scorer needs per scene, built once (spec pdm_score.md §3), and its disk store."""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np
import shapely

from data_pipelines.errors import DataError, MapError
from data_pipelines.maps import DEFAULT_MAP_VERSION, NuPlanMap, load_map
from data_pipelines.maps.locations import map_file_path, resolve_location
from data_pipelines.safe_pickle import NUMPY_GLOBALS, PLAIN_GLOBALS, PickleFormat, restricted_loads
from navsim_eval.pdm.cache_fingerprint import changed_parts, describe_changes, source_fingerprint
from navsim_eval.pdm.centerline import CenterlineError, build_centerline, starting_lane
from navsim_eval.pdm.constants import STATE_DIM, StateIndex, check_version, is_synthetic_token
from navsim_eval.pdm.drivable_map import DrivableMap, build_drivable_map
from navsim_eval.pdm.footprint import ego_centers, ego_corners, polygons_from_corners
from navsim_eval.pdm.objects import SceneRedLights, integer_lane_ids, red_ids_among
from navsim_eval.pdm.path import PDMPath
from navsim_eval.pdm.planner import PDMClosedConfig, build_forecast_observation, frame_objects, plan_pdm_closed
from navsim_eval.pdm.route import Route, build_route

logger = logging.getLogger(__name__)

# Version of the on-disk format written by MetricCacheStore; bump on any change of the stored fields or of
# how they are computed (2: observation timed by frame index, see docs/pdm_scorer.md "Audit notes";
# 3: source fingerprint stored and checked on load; 4: traffic lights fingerprinted as an integer array).
# 5: the scene fingerprint hashes the red lane connectors, not every light pair; polygons stored as coordinate
# runs where they are all Polygons; 6: an observation's boxes stored as their corners; 7: a ground-truth
# observation's boxes stored as their poses (centre, heading, half sizes), corners computed on load
FORMAT_VERSION = 7
MIN_RING_COORDINATES = 4  # a closed ring: at least three points and the closing one
CACHE_FILE_SUFFIX = ".mcache"
# zlib level of the stored caches: level 1 writes a city-map cache in 2/3 of level 3's time for 4 % more bytes
# (measured on the `realistic` preset, docs/pdm_scorer.md); reading does not depend on the level.
CACHE_COMPRESSION_LEVEL = 1
# Number of logged future poses of the human trajectory (v2, spec §3.7) and their spacing.
HUMAN_TRAJECTORY_POSES = 8
METRIC_CACHE_PICKLE = PickleFormat("metric cache", NUMPY_GLOBALS | PLAIN_GLOBALS)
"""Cache entries hold plain values only (see :func:`metric_cache_to_plain`)."""
# Ego velocities/accelerations pass through float32 in the devkit's scene dataclasses (golden fixtures).
EGO_DYNAMICS_DTYPE = np.float32


class MetricCacheError(DataError):
    """A metric cache entry is missing, stale (other format version) or unreadable."""

    def __init__(self, token: str, reason: str, path: Optional[Path] = None):
        self.token = token
        self.path = path
        where = f"metric cache of token {token!r}" + (f" ({path})" if path is not None else "")
        super().__init__(f"{where}: {reason}")


class UnreadableMetricCacheError(MetricCacheError):
    """A metric cache file cannot be decoded (truncated, damaged) or holds another token's cache."""


class StaleMetricCacheError(MetricCacheError):
    """A metric cache entry was built from other data (scene, map, metric version) or in an older format.

    `changed` names the differing parts ("scene", "map", "metric", "format").
    """

    def __init__(self, token: str, changed: list[str], reason: str, path: Optional[Path] = None):
        self.changed = list(changed)
        super().__init__(token, f"stale cache entry: {reason}; rebuild it", path)


@dataclass
class MetricCache:
    """Per-scene inputs of the PDM scorer (spec §3)."""

    token: str
    log_name: str
    map_location: str
    version: str  # "v1" | "v2"
    timepoint_us: int
    ego_state: np.ndarray  # (11,) current ego state (spec §1.2)
    pdm_trajectory: np.ndarray  # (51, 11) PDM-Closed reference, x/y/heading set
    pdm_trajectory_time_us: np.ndarray  # (51,) relative to timepoint_us
    centerline: np.ndarray  # (N, 3) x, y, unwrapped heading
    route_lane_ids: list[str]  # lanes of the corrected route
    drivable_map: DrivableMap
    observation: Any  # navsim_eval.pdm.observation.Observation (ground truth, spec §3.5/3.6)
    route_roadblock_ids: list[str] = field(default_factory=list)  # corrected route
    original_route_roadblock_ids: list[str] = field(default_factory=list)  # the frame's route, deduplicated
    starting_lane_id: str = ""
    pdm_proposal_index: int = -1
    human_trajectory: Optional[np.ndarray] = None  # (8, 3) v2: logged future, relative to the current pose
    past_human_states: Optional[np.ndarray] = None  # (4, 11) v2: ego states at -1.5 ... 0 s
    past_human_time_us: Optional[np.ndarray] = None  # (4,) v2: relative to timepoint_us
    source_fingerprint: dict[str, str] = field(default_factory=dict)  # see navsim_eval.pdm.cache_fingerprint
    format_version: int = FORMAT_VERSION

    @cached_property
    def centerline_path(self) -> PDMPath:
        """The centerline as a polyline with projection / interpolation."""
        return PDMPath(self.centerline)


def ego_state_of_frame(frame) -> np.ndarray:
    """11-vector ego state of a frame (spec §1.2): global rear-axle pose, ego-frame velocity and acceleration."""
    status = frame.ego_status
    state = np.zeros(STATE_DIM, dtype=np.float64)
    state[[StateIndex.X, StateIndex.Y, StateIndex.HEADING]] = np.asarray(status.ego_pose, dtype=np.float64)
    state[[StateIndex.VELOCITY_X, StateIndex.VELOCITY_Y]] = np.asarray(status.ego_velocity).astype(EGO_DYNAMICS_DTYPE)
    state[[StateIndex.ACCELERATION_X, StateIndex.ACCELERATION_Y]] = np.asarray(status.ego_acceleration).astype(
        EGO_DYNAMICS_DTYPE)
    return state


def red_light_connectors(red_ids: np.ndarray, route: Route) -> tuple[list[str], list[shapely.Geometry]]:
    """Ids and polygons of the RED lane connectors `red_ids` (a frame's, `objects.SceneRedLights`) that are lanes
    of the route (spec §3.8)."""
    lanes = route.lane_by_id()
    ids = red_ids_among(red_ids, integer_lane_ids(lanes))
    return ids, [lanes[key].polygon for key in ids]


def build_metric_cache(
    scene, map_api: Optional[NuPlanMap] = None, version: str = "v1", config: PDMClosedConfig = PDMClosedConfig()
) -> MetricCache:
    """Build the metric cache of a scene (spec §3) with the map of its location.

    Map problems (unknown ids, missing layers) and routes without lanes raise MetricCacheError naming the token.
    """
    check_version(version)
    map_api = map_api if map_api is not None else scene.map_api
    if map_api is None:
        raise MetricCacheError(scene.token, "no map given and the scene carries none")
    try:
        return _build_metric_cache(scene, map_api, version, config)
    except (MapError, CenterlineError) as exc:
        raise MetricCacheError(scene.token, str(exc)) from exc


def _build_metric_cache(scene, map_api: NuPlanMap, version: str, config: PDMClosedConfig) -> MetricCache:
    from navsim_eval.pdm.observation import build_ground_truth_observation

    frame = scene.current_frame
    ego_state = ego_state_of_frame(frame)
    pose = ego_state[[StateIndex.X, StateIndex.Y, StateIndex.HEADING]]
    center = ego_centers(pose)
    footprint = polygons_from_corners(ego_corners(pose))[()]

    original_route, route = build_route(map_api, frame.roadblock_ids, pose)
    drivable_map = build_drivable_map(map_api, center, config.map_radius)
    start = starting_lane(route, drivable_map, pose, center, footprint)
    centerline = build_centerline(map_api, route, start)

    red_lights = SceneRedLights(scene.frames)  # read once for the planner, the observation and the fingerprint
    light_ids, light_polygons = red_light_connectors(red_lights.ids(scene.current_frame_index), route)
    forecast = build_forecast_observation(frame_objects(frame), pose, light_ids, light_polygons, config)
    plan = plan_pdm_closed(ego_state, forecast, centerline, route.lane_ids, drivable_map,
                           start.speed_limit_mps, version, config)

    observation = build_ground_truth_observation(
        scene, version, map_api=map_api, route_lane_ids=original_route.lane_ids, ego_state=ego_state,
        red_lights=red_lights)

    human, past_states, past_time = None, None, None
    if version == "v2":
        if not is_synthetic_token(scene.token):  # synthetic scenes carry no logged future (§8.3)
            human = scene.get_future_trajectory(HUMAN_TRAJECTORY_POSES).poses.astype(np.float64)
        history = scene.frames[: scene.current_frame_index + 1]
        past_states = np.stack([ego_state_of_frame(f) for f in history])
        past_time = np.array([int(f.timestamp) - int(frame.timestamp) for f in history], dtype=np.int64)

    return MetricCache(
        token=scene.token,
        log_name=scene.scene_metadata.log_name,
        map_location=map_api.location,
        version=version,
        timepoint_us=int(frame.timestamp),
        ego_state=ego_state,
        pdm_trajectory=plan.trajectory,
        pdm_trajectory_time_us=plan.time_us,
        centerline=centerline.poses.copy(),
        route_lane_ids=route.lane_ids,
        drivable_map=drivable_map,
        observation=observation,
        route_roadblock_ids=route.roadblock_ids,
        original_route_roadblock_ids=original_route.roadblock_ids,
        starting_lane_id=start.id,
        pdm_proposal_index=plan.selected_proposal,
        human_trajectory=human,
        past_human_states=past_states,
        past_human_time_us=past_time,
        source_fingerprint=source_fingerprint(scene, version, map_api.location, getattr(map_api, "path", None),
                                              red_lights),
    )


# ----------------------------------------------------------------------------------------------------- storage


def _polygons_to_plain(polygons: np.ndarray) -> dict:
    """Polygons (P,) as plain values: coordinate runs when every one is a non-empty Polygon (one coordinate call
    for hole-free ones, the boxes of an observation), else WKB."""
    polygons = np.asarray(polygons, dtype=object).reshape(-1)
    types = shapely.get_type_id(polygons)
    counts = shapely.get_num_coordinates(polygons)
    if not (np.all(types == shapely.GeometryType.POLYGON) and np.all(counts >= MIN_RING_COORDINATES)):
        return {"wkb": shapely.to_wkb(polygons)}
    if shapely.get_num_interior_rings(polygons).any():
        _, coordinates, (ring_offsets, polygon_offsets) = shapely.to_ragged_array(polygons)
    else:
        coordinates = shapely.get_coordinates(polygons)
        ring_offsets = np.concatenate([[0], np.cumsum(counts)])
        polygon_offsets = np.arange(len(polygons) + 1)
    return {"coordinates": np.asarray(coordinates, dtype=np.float64),
            "ring_offsets": np.asarray(ring_offsets, dtype=np.int64),
            "polygon_offsets": np.asarray(polygon_offsets, dtype=np.int64)}


def _polygons_from_plain(data: dict) -> np.ndarray:
    if "wkb" in data:
        return shapely.from_wkb(data["wkb"]) if len(data["wkb"]) else np.zeros(0, dtype=object)
    if len(data["polygon_offsets"]) == 1:
        return np.zeros(0, dtype=object)
    return shapely.from_ragged_array(shapely.GeometryType.POLYGON, data["coordinates"],
                                     (data["ring_offsets"], data["polygon_offsets"]))


def _observation_to_plain(observation) -> dict:
    from navsim_eval.pdm.observation import BOX_POSE_COLUMNS

    steps = observation.num_steps
    parts = [observation.entry_parts(k) for k in range(steps)]
    others = [polygons for _, polygons in parts]
    # Each step lists its boxes (stored as their poses, or as their 4 corners where the observation holds no
    # poses), then its other polygons; all steps in one table each, split again by the step sizes.
    if observation.has_box_poses:
        boxes = {"box_poses": (np.concatenate([observation.box_poses(k) for k in range(steps)]) if steps
                               else np.zeros((0, len(BOX_POSE_COLUMNS)))).astype(np.float64)}
    else:
        boxes = {"box_corners": (np.concatenate([corners for corners, _ in parts]) if steps
                                 else np.zeros((0, 4, 2))).astype(np.float64)}
    return {
        "tokens": [list(map(str, observation.tokens(k))) for k in range(steps)],
        **boxes,
        "box_step_sizes": np.array([len(corners) for corners, _ in parts], dtype=np.int64),
        "polygons": _polygons_to_plain(np.concatenate(others) if steps else np.zeros(0, dtype=object)),
        "step_sizes": np.array([len(p) for p in others], dtype=np.int64),
        "unique_objects": {
            token: {"object_type": u.object_type, "is_agent": bool(u.is_agent), "heading": float(u.heading),
                    "velocity": np.asarray(u.velocity, dtype=np.float64)}
            for token, u in observation.unique_objects.items()
        },
        "collided_tokens": sorted(observation.collided_tokens),
    }


def _observation_from_plain(data: dict):
    from navsim_eval.pdm.observation import BOX_POSE_COLUMNS, Observation, UniqueObject, split_rows

    unique = {token: UniqueObject(token=token, **fields) for token, fields in data["unique_objects"].items()}
    steps = len(data["tokens"])
    polygons = split_rows(_polygons_from_plain(data["polygons"]), data["step_sizes"])[:steps]
    if "box_poses" in data:
        poses = np.asarray(data["box_poses"], dtype=np.float64).reshape(-1, len(BOX_POSE_COLUMNS))
        return Observation(data["tokens"], polygons, unique, set(data["collided_tokens"]),
                           box_poses_per_step=split_rows(poses, data["box_step_sizes"])[:steps])
    corners = split_rows(np.asarray(data["box_corners"], dtype=np.float64).reshape(-1, 4, 2),
                         data["box_step_sizes"])[:steps]
    return Observation(data["tokens"], polygons, unique, set(data["collided_tokens"]), box_corners_per_step=corners)


def metric_cache_to_plain(cache: MetricCache) -> dict:
    """The cache as plain Python / numpy values (polygons as WKB), stamped with the format version."""
    return {
        "format_version": FORMAT_VERSION,
        "token": cache.token, "log_name": cache.log_name, "map_location": cache.map_location,
        "version": cache.version, "timepoint_us": int(cache.timepoint_us),
        "ego_state": np.asarray(cache.ego_state), "pdm_trajectory": np.asarray(cache.pdm_trajectory),
        "pdm_trajectory_time_us": np.asarray(cache.pdm_trajectory_time_us), "centerline": np.asarray(cache.centerline),
        "route_lane_ids": list(cache.route_lane_ids),
        "drivable_map": {"tokens": list(cache.drivable_map.tokens), "types": list(cache.drivable_map.types),
                         "polygons": _polygons_to_plain(cache.drivable_map.polygons)},
        "observation": _observation_to_plain(cache.observation),
        "route_roadblock_ids": list(cache.route_roadblock_ids),
        "original_route_roadblock_ids": list(cache.original_route_roadblock_ids),
        "starting_lane_id": cache.starting_lane_id, "pdm_proposal_index": int(cache.pdm_proposal_index),
        "human_trajectory": cache.human_trajectory, "past_human_states": cache.past_human_states,
        "past_human_time_us": cache.past_human_time_us,
        "source_fingerprint": dict(cache.source_fingerprint),
    }


def metric_cache_from_plain(data: dict) -> MetricCache:
    drivable = data["drivable_map"]
    polygons = _polygons_from_plain(drivable["polygons"])
    fields = {k: v for k, v in data.items() if k not in ("drivable_map", "observation", "format_version")}
    return MetricCache(
        **fields,
        drivable_map=DrivableMap(drivable["tokens"], drivable["types"], polygons),
        observation=_observation_from_plain(data["observation"]),
        format_version=data["format_version"],
    )


class MetricCacheStore:
    """Directory of metric caches, one zlib-compressed pickle of plain values per token (`<token>.mcache`)."""

    def __init__(self, root: Union[str, Path]):
        self.root = Path(root)

    def path(self, token: str) -> Path:
        return self.root / f"{token}{CACHE_FILE_SUFFIX}"

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self.path(token).is_file()

    def tokens(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name[: -len(CACHE_FILE_SUFFIX)] for p in self.root.glob(f"*{CACHE_FILE_SUFFIX}"))

    def save(self, cache: MetricCache) -> Path:
        """Write atomically (temporary file + rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        payload = zlib.compress(pickle.dumps(metric_cache_to_plain(cache), protocol=pickle.HIGHEST_PROTOCOL),
                                CACHE_COMPRESSION_LEVEL)
        target = self.path(cache.token)
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=f".{cache.token}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(payload)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def load(self, token: str, expected: Optional[Mapping[str, str]] = None) -> MetricCache:
        """The cache of a token; MetricCacheError naming the token when missing, stale or unreadable.

        `expected`: the source fingerprint of the data at hand (``cache_fingerprint.source_fingerprint``); an
        entry built from other data raises StaleMetricCacheError naming what changed. Parts left out of
        `expected` are not checked.
        """
        path = self.path(token)
        if not path.is_file():
            raise MetricCacheError(token, "no cache entry (build the metric cache first)", path)
        try:
            data, _ = restricted_loads(zlib.decompress(path.read_bytes()), METRIC_CACHE_PICKLE, path)
        except Exception as exc:
            raise UnreadableMetricCacheError(token, f"unreadable cache entry ({exc})", path) from exc
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            found = data.get("format_version") if isinstance(data, dict) else None
            raise StaleMetricCacheError(
                token, ["format"], f"format version {found!r}, expected {FORMAT_VERSION}", path)
        if data.get("token") != token:
            raise UnreadableMetricCacheError(token, f"entry holds token {data.get('token')!r}", path)
        changed = changed_parts(data.get("source_fingerprint") or {}, expected or {})
        if changed:
            raise StaleMetricCacheError(token, changed, describe_changes(changed) + " since it was built", path)
        return metric_cache_from_plain(data)

    def load_or_build(self, token: str, expected: Optional[Mapping[str, str]],
                      build: Callable[[], MetricCache]) -> MetricCache:
        """The stored cache if it matches `expected`, else `build()` (stored, replacing a stale or unreadable
        entry; an unreadable one is logged, as it points at damaged storage)."""
        if token in self:
            try:
                return self.load(token, expected)
            except StaleMetricCacheError:
                pass
            except UnreadableMetricCacheError as exc:
                logger.warning("rebuilding it: %s", exc)
        cache = build()
        self.save(cache)
        return cache


class MetricCacheProvider:
    """token -> MetricCache of one metric version: the one way every caller (scoring CLI, reward, evaluation
    harness) gets its metric caches.

    Caches are built from the scenes of the loader the caller already has (``scenes``: a ``SceneLoader``, or
    any object with ``get_scene_from_token``; or the scene passed to :meth:`get`), with the maps below
    ``maps_root`` (else the scene's own ``map_api``), and kept in ``store`` (a ``MetricCacheStore`` or its
    folder; None keeps nothing on disk). A stored entry is checked against the source fingerprint of the
    scene at hand (frames, map file, version; ``cache_fingerprint.py``) and rebuilt when stale.

    ``build_missing``: build entries the store lacks (False: a missing entry is a MetricCacheError naming the
    token). ``rebuild_stale``: rebuild stale and unreadable entries when the scene is at hand (False, or without
    the scene: StaleMetricCacheError naming what changed / UnreadableMetricCacheError naming the file).
    ``memo_size``: caches kept in memory per process for repeated :meth:`__call__` (reward rounds).
    Picklable, so that worker processes can load caches themselves.
    """

    def __init__(self, version: str, scenes: Any = None, *, maps_root: Optional[Union[str, Path]] = None,
                 map_version: Optional[str] = None, store: Union[MetricCacheStore, str, Path, None] = None,
                 build_missing: bool = True, rebuild_stale: bool = True, memo_size: int = 0):
        self.version = check_version(version)
        self.scenes = scenes
        self.maps_root = Path(maps_root) if maps_root is not None else None
        self.map_version = map_version or DEFAULT_MAP_VERSION
        self.store = store if isinstance(store, MetricCacheStore) or store is None else MetricCacheStore(store)
        self.build_missing = build_missing
        self.rebuild_stale = rebuild_stale
        self.memo_size = int(memo_size)
        self._memo: dict[str, MetricCache] = {}
        self.num_built = 0  # caches this provider built (not read from the store)

    def __call__(self, token: str) -> MetricCache:
        """The token's cache (its scene from ``scenes``), memoised."""
        cache = self._memo.get(token)
        if cache is None:
            cache = self.get(token)
            if self.memo_size > 0:
                if len(self._memo) >= self.memo_size:
                    self._memo.pop(next(iter(self._memo)))
                self._memo[token] = cache
        return cache

    def scene(self, token: str):
        """The token's scene without sensors (the metric cache reads none), None without ``scenes``."""
        if self.scenes is None:
            return None
        from data_pipelines.scene import SensorConfig

        return self.scenes.get_scene_from_token(token, sensor_config=SensorConfig.build_no_sensors())

    def can_build(self, scene) -> bool:
        return scene is not None and (self.maps_root is not None or getattr(scene, "map_api", None) is not None)

    def expected_fingerprint(self, scene) -> dict[str, str]:
        """Source fingerprint a cache of `scene` must carry (the map part when the map is known)."""
        if self.maps_root is not None:
            return expected_source_fingerprint(scene, self.maps_root, self.version, self.map_version)
        map_api = getattr(scene, "map_api", None)
        if map_api is not None:
            return source_fingerprint(scene, self.version, map_api.location, getattr(map_api, "path", None))
        return source_fingerprint(scene, self.version)

    def build(self, scene) -> MetricCache:
        """Build (not store) the cache of a scene."""
        if self.maps_root is not None:
            return build_metric_cache_for_scene(scene, self.maps_root, self.version, self.map_version)
        if getattr(scene, "map_api", None) is None:
            raise MetricCacheError(scene.token, "no maps root and no map on the scene to build the cache with")
        return build_metric_cache(scene, scene.map_api, self.version)

    def _build_counted(self, scene) -> MetricCache:
        cache = self.build(scene)
        self.num_built += 1
        return cache

    def get(self, token: str, scene=None) -> MetricCache:
        """The token's cache: stored if up to date, else built from `scene` (or the loader's) and stored."""
        if scene is None:
            scene = self.scene(token)
        store = self.store
        if store is not None and (token in store or not self.build_missing):
            expected = self.expected_fingerprint(scene) if scene is not None else None
            if self.rebuild_stale and self.can_build(scene) and token in store:
                cache = store.load_or_build(token, expected, lambda: self._build_counted(scene))
            else:
                cache = store.load(token, expected)
        else:
            if scene is None:
                raise MetricCacheError(token, "no cache entry and no scene to build it from")
            cache = self._build_counted(scene)
            if store is not None:
                store.save(cache)
        if cache.version != self.version:
            raise MetricCacheError(token, f"cached metric cache is {cache.version}, expected {self.version}")
        return cache


@dataclass
class CacheBuildReport:
    """What a batch build did: tokens whose cache was built, kept (up to date) or failed (token -> reason)."""

    version: str
    tokens: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def covered(self) -> int:
        """Tokens that have an up-to-date cache after the build."""
        return len(self.built) + len(self.up_to_date)


def build_caches(provider: MetricCacheProvider, tokens: Iterable[str], scenes: Optional[Mapping[str, Any]] = None,
                 overwrite: bool = False) -> CacheBuildReport:
    """Build and store the caches of many tokens through `provider` (scenes from `scenes` or the provider's
    loader); entries that are up to date are kept (all rebuilt with `overwrite`). Failures are recorded per
    token and the rest is built."""
    report = CacheBuildReport(provider.version)
    for token in tokens:
        report.tokens.append(token)
        try:
            scene = scenes[token] if scenes is not None else provider.scene(token)
            if overwrite:
                provider.store.save(provider.build(scene))
                report.built.append(token)
                continue
            before = provider.num_built
            provider.get(token, scene)
            (report.built if provider.num_built > before else report.up_to_date).append(token)
        except (DataError, ValueError) as exc:
            report.failures[token] = f"{type(exc).__name__}: {exc}"
    return report


def build_metric_caches(
    scenes: Iterable, maps_root: Union[str, Path], version: str, store: MetricCacheStore,
    map_version: Optional[str] = None, overwrite: bool = False,
) -> dict[str, str]:
    """Build and store the caches of many `Scene` objects; returns the failures ({token: error})."""
    by_token = {scene.token: scene for scene in scenes}
    provider = MetricCacheProvider(version, maps_root=maps_root, map_version=map_version, store=store)
    return build_caches(provider, by_token, by_token, overwrite).failures


def expected_source_fingerprint(scene, maps_root: Optional[Union[str, Path]], version: str,
                                map_version: Optional[str] = None) -> dict[str, str]:
    """Source fingerprint of a scene's cache from its frames and (when `maps_root` is given) its map file,
    without loading the map."""
    if maps_root is None:
        return source_fingerprint(scene, version)
    try:
        location = resolve_location(scene.scene_metadata.map_name)
        path, _ = map_file_path(maps_root, location, map_version or DEFAULT_MAP_VERSION)
    except MapError as exc:
        raise MetricCacheError(scene.token, str(exc)) from exc
    return source_fingerprint(scene, version, location, path)


def build_metric_cache_for_scene(scene, maps_root: Union[str, Path], version: str,
                                 map_version: Optional[str] = None) -> MetricCache:
    """Convenience: load the scene's map (cached per location) and build its metric cache."""
    try:
        map_api = load_map(maps_root, scene.scene_metadata.map_name, map_version or DEFAULT_MAP_VERSION)
    except MapError as exc:
        raise MetricCacheError(scene.token, str(exc)) from exc
    return build_metric_cache(scene, map_api, version)


__all__ = [
    "FORMAT_VERSION", "MetricCache", "MetricCacheError", "MetricCacheProvider", "MetricCacheStore",
    "CacheBuildReport", "StaleMetricCacheError", "UnreadableMetricCacheError", "build_caches", "build_metric_cache",
    "build_metric_cache_for_scene", "build_metric_caches", "ego_state_of_frame", "expected_source_fingerprint",
    "metric_cache_from_plain", "metric_cache_to_plain", "red_light_connectors",
]
