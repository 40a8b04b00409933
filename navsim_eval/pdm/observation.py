"""Obstacles per 10 Hz step: the `Observation` container and the ground-truth observation (spec §3.5, §3.6).

An observation lists, for each step k, the tokens and shapely polygons of the obstacles present (tracked
objects and, in v2, red-light lane connectors). `unique_objects` holds, per track token, the object at the first
step where it appears (its speed decides "stopped", its heading the direction tests of NC and TTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import shapely
from shapely import STRtree

from data_pipelines.geometry import wrap_angle
from navsim_eval.pdm.constants import (
    AGENT_TYPES,
    FRAMES_PER_STEP,
    OBSERVATION_FRAME_INTERVAL_S,
    RED_LIGHT_PREFIX,
    RED_LIGHT_TYPE,
    SIM_DT,
    V1_OBSERVATION_FRAMES,
    V1_OBSERVATION_STEPS,
    V2_OBSERVATION_FRAMES,
    V2_OBSERVATION_STEPS,
    check_version,
)
from navsim_eval.pdm.compiled_geometry import (
    RingTable,
    concatenate_ring_tables,
    convex_quads_of_corners,
    polygon_tables,
    quad_entry_pairs,
    ring_table_of_corners,
)
from navsim_eval.pdm.errors import ObservationError
from navsim_eval.pdm.footprint import box_corners, corner_bounds, ego_corners, polygons_from_corners
from navsim_eval.pdm.objects import SceneRedLights, frame_objects, integer_lane_ids, red_ids_among


# A box given by its pose: centre, heading and half sizes (`footprint.box_corners` makes its corners).
BOX_POSE_COLUMNS = ("x", "y", "heading", "half_length", "half_width")


def red_light_token(connector_id: Any) -> str:
    """Observation token of a red lane connector (§3.6)."""
    return f"{RED_LIGHT_PREFIX}{connector_id}"


def is_red_light_token(token: str) -> bool:
    return token.startswith(RED_LIGHT_PREFIX)


@dataclass(frozen=True)
class UniqueObject:
    """A track as first seen: type, global heading and velocity (zeros for static objects and red lights)."""

    token: str
    object_type: str
    is_agent: bool
    heading: float
    velocity: np.ndarray  # (2,) global vx, vy [m/s]

    @property
    def speed(self) -> float:
        return float(np.hypot(self.velocity[0], self.velocity[1]))


@dataclass
class FlatObservation:
    """All (step, token, polygon) entries concatenated (step-major), with per-entry and per-track attributes."""

    step: np.ndarray  # (E,) int
    offsets: np.ndarray  # (num_steps + 1,) start of each step's entries
    tokens: np.ndarray  # (E,) object
    box_corners: np.ndarray  # (B, 4, 2) corners of the distinct boxes, whose outlines are 0 .. B - 1
    given_polygons: np.ndarray  # (P - B,) the other distinct polygons, outlines B .. P - 1
    is_red_light: np.ndarray  # (E,) bool
    bounds: np.ndarray  # (E, 4) x_min, y_min, x_max, y_max
    token_ids: np.ndarray  # (E,) int: index into `unique_tokens`
    unique_tokens: list[str]
    track_is_agent: np.ndarray  # (U,) bool, per unique token (False for red lights)
    track_speed: np.ndarray  # (U,)
    track_heading: np.ndarray  # (U,)
    track_collided: np.ndarray  # (U,) bool: in the observation's collided set
    quad_corners: np.ndarray  # (E, 4, 2) outline of the convex-quad entries (the boxes), zeros for others
    is_convex_quad: np.ndarray  # (E,) bool
    outlines: RingTable  # the distinct polygons (entries of several steps share theirs, e.g. red lights)
    outline: np.ndarray  # (E,) int: an entry's polygon in `outlines`
    outline_entry: np.ndarray  # (P,) int: an entry of each distinct polygon
    _outline_centroids: Optional[np.ndarray] = None  # (P, 2), NaN until asked for

    def polygons_of(self, entries: np.ndarray) -> np.ndarray:
        """(n,) shapely polygons of the given entries. Boxes held as corners (a ground-truth observation's) are
        made here, only those asked for: the compiled tests and the cache file need their corners alone."""
        outlines = self.outline[np.asarray(entries, dtype=np.int64).reshape(-1)]
        polygons = np.empty(len(outlines), dtype=object)
        is_box = outlines < len(self.box_corners)
        if is_box.any():
            polygons[is_box] = polygons_from_corners(self.box_corners[outlines[is_box]])
        polygons[~is_box] = self.given_polygons[outlines[~is_box] - len(self.box_corners)]
        return polygons

    def centroids(self, entries: np.ndarray) -> np.ndarray:
        """(n, 2) GEOS centroids of the given entries' polygons, computed once per distinct polygon and only for
        the polygons asked for (the scorer needs them for the few entries in contact with the ego)."""
        entries = np.asarray(entries, dtype=np.int64).reshape(-1)
        if self._outline_centroids is None:
            self._outline_centroids = np.full((len(self.outlines.ring_start) - 1, 2), np.nan)
        outlines = self.outline[entries]
        missing = np.unique(outlines[np.isnan(self._outline_centroids[outlines, 0])])
        if len(missing):
            points = shapely.centroid(self.polygons_of(self.outline_entry[missing]))
            self._outline_centroids[missing] = np.stack([shapely.get_x(points), shapely.get_y(points)], axis=-1)
        return self._outline_centroids[outlines]


class Observation:
    """Obstacles (token, polygon) per 10 Hz step k = 0 ... num_steps - 1."""

    def __init__(
        self,
        tokens_per_step: Sequence[Sequence[str]],
        polygons_per_step: Sequence[Any],
        unique_objects: dict[str, UniqueObject],
        collided_tokens: Optional[Iterable[str]] = None,
        box_corners_per_step: Optional[Sequence[np.ndarray]] = None,
        box_poses_per_step: Optional[Sequence[np.ndarray]] = None,
    ):
        """`box_corners_per_step[k]` (optional): corners (m_k, 4, 2) of the first m_k entries of step k, whose
        polygons are made only when asked for; `polygons_per_step[k]` then holds the step's other entries. Steps
        that list the same corner array (a forecast's steps between two samples) share its boxes' outlines.
        `box_poses_per_step[k]` (instead of the corners): those boxes as (m_k, 5) rows of `BOX_POSE_COLUMNS`;
        their corners are computed here (one `box_corners` call for all steps), and the poses are what a cache
        file stores (5 numbers per box and step, of which the two half sizes repeat along a track, against 8 corner
        coordinates)."""
        if len(tokens_per_step) != len(polygons_per_step):
            raise ObservationError(
                f"observation has {len(tokens_per_step)} token lists but {len(polygons_per_step)} polygon lists"
            )
        # steps that list the same sequence object (a forecast's steps between two samples) share its array
        self._tokens = _shared_object_arrays(tokens_per_step)
        self._given = _shared_object_arrays(polygons_per_step)
        self._box_poses: Optional[list[np.ndarray]] = None
        if box_poses_per_step is not None:
            if box_corners_per_step is not None:
                raise ObservationError("observation: give its boxes as corners or as poses, not both")
            if len(box_poses_per_step) != len(self._tokens):
                raise ObservationError(f"observation has {len(self._tokens)} steps but "
                                       f"{len(box_poses_per_step)} box-pose lists")
            self._box_poses = [np.asarray(p, dtype=np.float64).reshape(-1, len(BOX_POSE_COLUMNS))
                               for p in box_poses_per_step]
            box_corners_per_step = _corners_of_poses(self._box_poses)
        if box_corners_per_step is None:
            self._box_corners = [np.zeros((0, 4, 2)) for _ in self._tokens]
        else:
            if len(box_corners_per_step) != len(self._tokens):
                raise ObservationError(f"observation has {len(self._tokens)} steps but "
                                       f"{len(box_corners_per_step)} box-corner lists")
            self._box_corners = _shared_object_arrays(
                box_corners_per_step, lambda c: np.asarray(c, dtype=np.float64).reshape(-1, 4, 2))
        for step, (tokens, boxes, polygons) in enumerate(zip(self._tokens, self._box_corners, self._given)):
            if len(tokens) != len(boxes) + len(polygons):
                raise ObservationError(f"observation step {step}: {len(tokens)} tokens, "
                                       f"{len(boxes) + len(polygons)} polygons")
        self._polygons: Optional[list[np.ndarray]] = None if any(len(c) for c in self._box_corners) else self._given
        self.unique_objects = dict(unique_objects)
        self.collided_tokens: set[str] = set(collided_tokens or ())
        self._trees: dict[int, STRtree] = {}
        self._flat: Optional[FlatObservation] = None

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def num_steps(self) -> int:
        return len(self._tokens)

    def tokens(self, step: int) -> np.ndarray:
        return self._tokens[step]

    def polygons(self, step: int) -> np.ndarray:
        return self._all_polygons()[step]

    def entry_parts(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(corners (m, 4, 2) of the step's first m entries, the polygons of the others), without making the
        boxes' polygons."""
        return self._box_corners[step], self._given[step]

    @property
    def has_box_poses(self) -> bool:
        """Whether the boxes were given as poses (:meth:`box_poses`), as a ground-truth observation's are."""
        return self._box_poses is not None

    def box_poses(self, step: int) -> np.ndarray:
        """(m, 5) `BOX_POSE_COLUMNS` of the step's boxes (only for an observation built from poses)."""
        if self._box_poses is None:
            raise ObservationError("observation: its boxes were given as corners, it holds no poses")
        return self._box_poses[step]

    def _all_polygons(self) -> list[np.ndarray]:
        if self._polygons is None:  # every distinct box array's polygons in one construction call
            distinct, array_of_step = _distinct_objects(self._box_corners)
            sizes = [len(c) for c in distinct]
            boxes = split_rows(polygons_from_corners(np.concatenate(distinct)), sizes)
            self._polygons = [np.concatenate([boxes[a], g]) if len(g) else boxes[a]
                              for a, g in zip(array_of_step, self._given)]
        return self._polygons

    def tree(self, step: int) -> STRtree:
        """STRtree over the polygons of one step (built on first use)."""
        if step not in self._trees:
            self._trees[step] = STRtree(self.polygons(step))
        return self._trees[step]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_trees"] = {}
        state["_flat"] = None
        return state

    def flat(self) -> FlatObservation:
        """The concatenated view used by the vectorised scorer (built once per observation)."""
        if self._flat is None:
            counts = np.array([len(t) for t in self._tokens], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(counts)])
            tokens = np.concatenate(self._tokens) if counts.sum() else np.zeros(0, dtype=object)
            unique_tokens, token_ids = _sorted_unique(self._tokens)
            is_red = np.array([is_red_light_token(t) for t in unique_tokens], dtype=bool)
            missing = [t for t, red in zip(unique_tokens, is_red) if not red and t not in self.unique_objects]
            if missing:
                raise ObservationError(f"observation tokens without a unique object: {missing[:5]}")
            objects = [None if red else self.unique_objects[t] for t, red in zip(unique_tokens, is_red)]
            # Entries, step-major, are each step's boxes (given by corners) then its other polygons. A box is its
            # own outline, shared by the steps that list the same corner array; static objects and red lights
            # given as polygons are the same polygon object at every step: geometry once per distinct one.
            box_count = np.array([len(c) for c in self._box_corners], dtype=np.int64)
            is_box = np.arange(int(counts.sum())) < np.repeat(offsets[:-1] + box_count, counts)
            box_arrays, array_of_step = _distinct_objects(self._box_corners)
            array_of_step = np.asarray(array_of_step, dtype=np.int64)
            corners = np.concatenate(box_arrays) if box_count.sum() else np.zeros((0, 4, 2))
            array_start = np.concatenate([[0], np.cumsum([len(c) for c in box_arrays])]).astype(np.int64)
            step_box_start = array_start[array_of_step]  # each step's first box outline
            box_entries = int(box_count.sum())
            box_outline = (np.repeat(step_box_start - (np.cumsum(box_count) - box_count), box_count)
                           + np.arange(box_entries))
            # each box outline's first entry: the entries of the first step listing its array
            first_step = np.unique(array_of_step, return_index=True)[1]
            array_size = np.diff(array_start)
            first_box_entry = (np.repeat(offsets[first_step] - array_start[:-1], array_size)
                               + np.arange(int(array_start[-1]))).astype(np.int64)
            given = np.concatenate(self._given) if (counts - box_count).sum() else np.zeros(0, dtype=object)
            identity = _per_distinct_array(self._given, lambda polygons: np.array([id(p) for p in polygons],
                                                                                 dtype=np.int64))
            _, first, inverse = np.unique(identity, return_index=True, return_inverse=True)
            distinct = given[first]
            num_boxes = len(corners)
            outline = np.empty(len(tokens), dtype=np.int64)
            outline[is_box] = box_outline
            outline[~is_box] = num_boxes + np.asarray(inverse, dtype=np.int64).reshape(-1)
            box_quads, box_convex = convex_quads_of_corners(corners)
            given_quads, given_convex, given_outlines, given_bounds = polygon_tables(distinct)
            bounds = corner_bounds(corners)
            outlines = ring_table_of_corners(corners)
            if len(distinct):  # the boxes' tables first, then the given polygons' (outline order)
                bounds = np.concatenate([bounds, given_bounds])
                outlines = concatenate_ring_tables(outlines, given_outlines)
            self._flat = FlatObservation(
                step=np.repeat(np.arange(len(counts)), counts),
                offsets=offsets,
                tokens=tokens,
                box_corners=corners,
                given_polygons=distinct,
                is_red_light=is_red[token_ids] if len(tokens) else np.zeros(0, dtype=bool),
                bounds=bounds[outline],
                token_ids=np.asarray(token_ids, dtype=np.int64).reshape(-1),
                unique_tokens=unique_tokens,
                track_is_agent=np.array([o is not None and o.is_agent for o in objects], dtype=bool),
                track_speed=np.array([0.0 if o is None else o.speed for o in objects]),
                track_heading=np.array([0.0 if o is None else o.heading for o in objects]),
                track_collided=np.array([t in self.collided_tokens for t in unique_tokens], dtype=bool),
                quad_corners=np.concatenate([box_quads, given_quads])[outline],
                is_convex_quad=np.concatenate([box_convex, given_convex])[outline],
                outlines=outlines,
                outline=outline,
                outline_entry=np.concatenate([first_box_entry,
                                              np.flatnonzero(~is_box)[np.asarray(first, dtype=np.int64)]]),
            )
        return self._flat

    def query(self, polygons: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (query index, flat entry index) of query polygons intersecting entries of their own step.

        `steps[i]` is the observation step polygon i is tested against (closed sets: touching counts);
        steps outside the observation have no entries.
        """
        polygons = np.asarray(polygons, dtype=object).reshape(-1)
        query, entry = self._bbox_candidates(shapely.bounds(polygons).reshape(-1, 4), steps)
        hit = shapely.intersects(polygons[query], self.flat().polygons_of(entry))
        return query[hit], entry[hit]

    def query_corners(self, corners: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`query` for convex quadrilaterals given by corners (N, 4, 2) (the ego footprints), in one
        compiled pass (`compiled_geometry.quad_entry_pairs`); pairs are query-major."""
        corners = np.ascontiguousarray(corners, dtype=np.float64).reshape(-1, 4, 2)
        steps = np.array(np.broadcast_to(np.asarray(steps, dtype=np.int64).reshape(-1), len(corners)), order="C")
        flat = self.flat()
        return quad_entry_pairs(corners, steps, flat.offsets, flat.bounds, flat.quad_corners, flat.is_convex_quad,
                                flat.outline, flat.outlines.coordinates, flat.outlines.coordinate_start,
                                flat.outlines.ring_start)

    def _bbox_candidates(self, bounds: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, entry) pairs of the same step whose closed bounding boxes overlap (vectorised).

        Entries are first tested against the union box of the queries of their step, so obstacles away from
        every query (most of them: the queries are one scene's ego footprints) never enter the pair expansion.
        """
        flat = self.flat()
        steps = np.asarray(steps, dtype=np.int64).reshape(-1)
        empty = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        valid = (steps >= 0) & (steps < self.num_steps)
        if len(flat.step) == 0 or not valid.any():
            return empty
        # Union box of each step's queries (segment reductions over the queries sorted by step).
        order = np.flatnonzero(valid)
        order = order[np.argsort(steps[order], kind="stable")]
        sorted_steps = steps[order]
        segment_starts = np.flatnonzero(np.concatenate([[True], sorted_steps[1:] != sorted_steps[:-1]]))
        union = np.empty((self.num_steps, 4))
        union[:, :2] = np.inf
        union[:, 2:] = -np.inf
        query_steps = sorted_steps[segment_starts]
        union[query_steps, :2] = np.minimum.reduceat(bounds[order, :2], segment_starts, axis=0)
        union[query_steps, 2:] = np.maximum.reduceat(bounds[order, 2:], segment_starts, axis=0)
        entry_union = union[flat.step]
        near = np.flatnonzero(_boxes_overlap(entry_union, flat.bounds))
        if len(near) == 0:
            return empty
        near_offsets = np.searchsorted(flat.step[near], np.arange(self.num_steps + 1))
        clipped = np.where(valid, steps, 0)
        starts = near_offsets[clipped]
        counts = np.where(valid, near_offsets[clipped + 1] - starts, 0)
        total = int(counts.sum())
        if total == 0:
            return empty
        if total > self.MAX_DENSE_PAIRS:
            return self._bbox_candidates_per_step(bounds, steps, near, near_offsets)
        query = np.repeat(np.arange(len(steps)), counts)
        entry = near[np.arange(total) + np.repeat(starts - (np.cumsum(counts) - counts), counts)]
        overlap = _boxes_overlap(bounds[query], flat.bounds[entry])
        return query[overlap], entry[overlap]

    MAX_DENSE_PAIRS = 400_000  # above this many (query, same-step entry) pairs, test step by step

    def _bbox_candidates_per_step(self, bounds: np.ndarray, steps: np.ndarray, near: np.ndarray,
                                  near_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As the dense expansion, one step at a time; `near` are the candidate entries (step-major) and
        `near_offsets` the start of each step's candidates."""
        flat = self.flat()
        order = np.argsort(steps, kind="stable")
        boundaries = np.searchsorted(steps[order], np.arange(self.num_steps + 1))
        queries, entries = [], []
        for step in range(self.num_steps):
            lo, hi = boundaries[step], boundaries[step + 1]
            step_entries = near[near_offsets[step]:near_offsets[step + 1]]
            if lo == hi or len(step_entries) == 0:
                continue
            members = order[lo:hi]
            overlap = _boxes_overlap(bounds[members][:, None], flat.bounds[step_entries][None])
            local_query, local_entry = np.nonzero(overlap)
            if len(local_query):
                queries.append(members[local_query])
                entries.append(step_entries[local_entry])
        if not queries:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(queries), np.concatenate(entries)


def _object_array(values) -> np.ndarray:
    """A new 1-D object array of `values` (an object array is copied without looking at its elements)."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values.reshape(-1).copy()
    values = list(values)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _shared_object_arrays(sequences: Sequence[Any], convert=None) -> list[np.ndarray]:
    """`convert` (default :func:`_object_array`) of each sequence; a sequence object listed several times gets
    one array."""
    convert = _object_array if convert is None else convert
    distinct, index = _distinct_objects(sequences)
    arrays = [convert(values) for values in distinct]
    return [arrays[i] for i in index]


def _corners_of_poses(poses_per_step: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Corners (m_k, 4, 2) of every step's (m_k, 5) box poses, computed in one call."""
    table = np.concatenate(poses_per_step) if len(poses_per_step) else np.zeros((0, len(BOX_POSE_COLUMNS)))
    corners = box_corners(table[:, :2], table[:, 2], table[:, 3], table[:, 4])
    return split_rows(corners, [len(p) for p in poses_per_step])


def split_rows(table: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """Consecutive row blocks of `table` of the given sizes, as views (what `np.split` gives, at a fraction of its
    per-block cost: a v1 observation has 51 steps)."""
    ends = np.cumsum(sizes).tolist()
    return [table[start:end] for start, end in zip([0] + ends[:-1], ends)]


def _distinct_objects(arrays: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """(the distinct objects of `arrays` in first-listed order, index of each listed one among them), by
    identity (the list holds each object, so no id is reused meanwhile)."""
    index: dict[int, int] = {}
    distinct = []
    for array in arrays:
        if id(array) not in index:
            index[id(array)] = len(distinct)
            distinct.append(array)
    return distinct, [index[id(a)] for a in arrays]


def _per_distinct_array(arrays: Sequence[np.ndarray], function) -> np.ndarray:
    """`function` of every array concatenated, evaluated once per distinct array object."""
    distinct, index = _distinct_objects(arrays)
    if len(distinct) == len(arrays):  # no sharing (a ground-truth observation): one call
        return function(np.concatenate(arrays) if len(arrays) else np.zeros(0, dtype=object))
    parts = [function(a) for a in distinct]
    return np.concatenate([parts[i] for i in index])


def _sorted_unique(token_arrays: Sequence[np.ndarray]) -> tuple[list[str], np.ndarray]:
    """(sorted distinct tokens, index of each token among them) of the arrays concatenated, as
    `np.unique(..., return_inverse=True)` on the strings, through a dict: an observation lists few distinct
    tokens many times, and a shared array is looked at once."""
    first_seen: dict[str, int] = {}
    seen_ids = _per_distinct_array(token_arrays, lambda tokens: np.array(
        [first_seen.setdefault(t, len(first_seen)) for t in tokens], dtype=np.int64))
    unique_tokens = sorted(str(t) for t in first_seen)
    first_seen = {str(t): i for t, i in first_seen.items()}
    rank = np.empty(len(first_seen), dtype=np.int64)
    rank[[first_seen[t] for t in unique_tokens]] = np.arange(len(unique_tokens))
    return unique_tokens, rank[seen_ids]


def _boxes_overlap(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Closed axis-aligned boxes (..., 4) = (x_min, y_min, x_max, y_max) overlap (touching counts)."""
    return ((first[..., 0] <= second[..., 2]) & (first[..., 2] >= second[..., 0])
            & (first[..., 1] <= second[..., 3]) & (first[..., 3] >= second[..., 1]))


# --------------------------------------------------------------------------------------- ground truth (§3.5)


@dataclass
class _Tracks:
    """The scored boxes of a frame window as tracks (first-seen order): per track its type and size at its first
    frame, per (track, frame) whether it is seen and its global (x, y, heading, vx, vy)."""

    tokens: list[str]
    types: list[str]
    length: np.ndarray  # (T,)
    width: np.ndarray  # (T,)
    seen: np.ndarray  # (T, F) bool
    samples: np.ndarray  # (T, F, 5)


def _window_tracks(frames) -> _Tracks:
    """:class:`_Tracks` of the scored boxes of `frames` in the map frame (§1.3); a track token listed twice in
    one frame is an ObservationError."""
    objects = [frame_objects(frame) for frame in frames]
    # every box of the window, frame-major, then the scored ones
    scored = np.flatnonzero(np.concatenate([o.is_scored for o in objects])) if objects else np.zeros(0, np.int64)
    all_tokens = _object_array([t for o in objects for t in o.tokens])
    all_types = _object_array([t for o in objects for t in o.types])
    tokens, types = all_tokens[scored], all_types[scored].tolist()
    fields = [np.concatenate([getattr(o, name) for o in objects])[scored] if objects else np.zeros(0)
              for name in ("x", "y", "heading", "vx", "vy", "length", "width")]
    values, sizes = np.stack(fields[:5], axis=-1), np.stack(fields[5:], axis=-1)
    column = np.repeat(np.arange(len(frames)), [len(o) for o in objects])[scored]
    # Rows in first-seen order (entries are frame-major), numbered as the tokens first appear.
    row_of: dict[str, int] = {}
    row = np.fromiter((row_of.setdefault(t, len(row_of)) for t in tokens), dtype=np.int64, count=len(tokens))
    # each track's first entry, in row order: rows are numbered as they first appear, so a row's first entry is
    # where the running maximum grows (what np.unique(row, return_index=True) gives)
    order = np.flatnonzero(np.diff(np.maximum.accumulate(row), prepend=-1) > 0)
    seen = np.zeros((len(order), len(frames)), dtype=bool)
    seen[row, column] = True
    if np.count_nonzero(seen) != len(row):  # a (track, frame) cell listed twice
        cell = row * len(frames) + column
        cells, cell_counts = np.unique(cell, return_counts=True)
        repeated = cells[cell_counts > 1]
        frame = frames[int(repeated[0] % len(frames))]
        names = sorted({str(tokens[i]) for i in np.flatnonzero(np.isin(cell, repeated))})
        raise ObservationError(f"frame {frame.token}: track token(s) listed more than once: {names[:5]}")
    samples = np.zeros((len(order), len(frames), 5))
    samples[row, column] = values
    return _Tracks([str(tokens[i]) for i in order], [types[i] for i in order], sizes[order, 0].copy(),
                   sizes[order, 1].copy(), seen, samples)


def _interpolate_tracks(seen: np.ndarray, samples: np.ndarray, frame_times: np.ndarray,
                        step_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(present (T, S), poses (T, S, 5)) of every track at the step times (§3.5): linear interpolation between a
    track's seen samples (headings unwrapped first), present between its first and last sample; a track seen
    once is present at every step. Computes what `np.interp` / `np.unwrap` give per track and column, for all
    tracks at once. `frame_times` (F,) must be ascending."""
    num_tracks, num_frames = seen.shape
    if np.any(np.diff(frame_times) < 0):
        raise ValueError("_interpolate_tracks: frame_times must be ascending")
    if num_tracks == 0:
        return np.zeros((0, len(step_times)), dtype=bool), np.zeros((0, len(step_times), samples.shape[-1]))
    counts = seen.sum(axis=1)
    rows = np.arange(num_tracks)[:, None]
    # Each track's seen samples first, in frame order; the slots after them repeat its last sample.
    order = np.argsort(~seen, axis=1, kind="stable")
    last = np.maximum(counts - 1, 0)
    slot = np.minimum(np.arange(num_frames)[None, :], last[:, None])
    order = order[rows, slot]
    times = frame_times[order]  # (T, F)
    values = samples[rows, order]  # (T, F, 5)
    values[..., 2] = np.unwrap(values[..., 2], axis=1)

    x = step_times[None, :]  # (1, S)
    # (T, S): the last sample at or before x, -1 before the first: a track's seen frames up to the last frame at or
    # before x (the frame times are ascending), counted once per track instead of compared per (sample, step)
    frames_up_to = np.searchsorted(frame_times, step_times, side="right")  # (S,) frames with time <= x
    seen_up_to = np.concatenate([np.zeros((num_tracks, 1), dtype=np.int64), np.cumsum(seen, axis=1)], axis=1)
    j = seen_up_to[:, frames_up_to] - 1
    first_time, last_time = times[:, :1], times[np.arange(num_tracks), last][:, None]
    present = (x >= first_time) & (x <= last_time)
    left = np.clip(j, 0, np.maximum(counts - 2, 0)[:, None])
    right = np.minimum(left + 1, last[:, None])
    # (track, slot) lookups as rows of the flattened arrays: one index array is a plain take, much cheaper than
    # indexing with broadcast (rows, slots) pairs
    row_start = rows * num_frames
    flat_times, flat_values = times.reshape(-1), values.reshape(num_tracks * num_frames, -1)
    x_left, x_right = flat_times[row_start + left], flat_times[row_start + right]
    y_left, y_right = flat_values[row_start + left], flat_values[row_start + right]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (y_right - y_left) / (x_right - x_left)[..., None]
        interpolated = slope * (x - x_left)[..., None] + y_left
    exact = (j >= 0) & (x == flat_times[row_start + np.maximum(j, 0)])
    at_sample = flat_values[row_start + np.clip(j, 0, last[:, None])]
    # before the first sample (j < 0) at_sample is the first sample
    poses = np.where((exact | (j >= last[:, None]) | (j < 0))[..., None], at_sample, interpolated)
    once = counts == 1
    present[once] = True
    poses[:, :, 2] = wrap_angle(poses[:, :, 2])
    if once.any():
        poses[once] = values[once, :1]  # not wrapped, as the sample itself
    return present, poses


def _red_light_obstacles(scene, num_steps: int, lane_ids: Optional[Iterable[str]], route_ids: Sequence[str],
                         map_api, red_lights: SceneRedLights) -> list[list[tuple[str, Any]]]:
    """Per step: (token, polygon) of RED on-route lane connectors from frame ⌊k/5⌋ (§3.6)."""
    current = scene.current_frame_index
    route_lanes = None if lane_ids is None else {str(i) for i in lane_ids}
    route_numbers: Optional[np.ndarray] = None
    polygons: dict[str, Any] = {}
    per_frame: dict[int, list[tuple[str, Any]]] = {}  # steps of one frame share its obstacles
    for frame_index in sorted({current + step // FRAMES_PER_STEP for step in range(num_steps)}):
        obstacles = per_frame[frame_index] = []
        red = red_lights.ids(frame_index)
        if len(red) and route_lanes is None:
            if map_api is None:
                raise ObservationError(f"scene {scene.token}: v2 red lights need the map (no map_api given)")
            route_lanes = _uncorrected_route_lane_ids(map_api, route_ids)
        if len(red) and route_numbers is None:
            route_numbers = integer_lane_ids(route_lanes)
        for connector_id in red_ids_among(red, route_numbers):  # no red ids: none
            if connector_id not in polygons:
                if map_api is None:
                    raise ObservationError(f"scene {scene.token}: v2 red lights need the map (no map_api given)")
                polygons[connector_id] = map_api.get_lane_connector(connector_id).polygon
            obstacles.append((red_light_token(connector_id), polygons[connector_id]))
    return [list(per_frame[current + step // FRAMES_PER_STEP]) for step in range(num_steps)]


def _uncorrected_route_lane_ids(map_api, roadblock_ids: Sequence[str]) -> set[str]:
    from navsim_eval.pdm.route import load_route  # route dictionaries are built by the metric-cache module

    return set(load_route(map_api, roadblock_ids).lane_ids)


def build_ground_truth_observation(
    scene,
    version: str,
    *,
    map_api=None,
    route_roadblock_ids: Optional[Sequence[str]] = None,
    route_lane_ids: Optional[Iterable[str]] = None,
    ego_state: Optional[np.ndarray] = None,
    red_lights: Optional[SceneRedLights] = None,
) -> Observation:
    """The observation a trajectory is scored against (§3.5, and §3.6 red lights in v2).

    v1: frames 0..10 after the current frame, 51 steps. v2: frames 0..8, 41 steps, tracks whose box touches the
    ego footprint at step 0 removed (log-replay agents), plus red on-route lane connectors. The red-light lane
    set is `route_lane_ids` if given, else the lanes of the *uncorrected* route `route_roadblock_ids` (default:
    the current frame's route) looked up in `map_api`; the map is only needed when a RED light is listed.
    `ego_state` (11,) defaults to the current frame's ego pose; `red_lights` shares the frames' red connectors
    with the caller.
    """
    check_version(version)
    num_frames = V1_OBSERVATION_FRAMES if version == "v1" else V2_OBSERVATION_FRAMES
    num_steps = V1_OBSERVATION_STEPS if version == "v1" else V2_OBSERVATION_STEPS
    current = scene.current_frame_index
    if len(scene.frames) < current + num_frames + 1:
        raise ObservationError(
            f"scene {scene.token}: {version} needs {num_frames} future frames, "
            f"the window has {len(scene.frames) - current - 1}"
        )
    relative_time_s = np.arange(num_frames + 1, dtype=np.float64) * OBSERVATION_FRAME_INTERVAL_S
    # frame index * 0.5 s, not the timestamp difference (§3.5)
    tracks = _window_tracks(scene.frames[current : current + num_frames + 1])
    step_times = np.arange(num_steps) * SIM_DT
    present, poses = _interpolate_tracks(tracks.seen, tracks.samples, relative_time_s, step_times)

    tokens = list(tracks.tokens)
    first = np.argmax(present, axis=1) if tokens else np.zeros(0, dtype=np.int64)
    unique_objects: dict[str, UniqueObject] = {
        token: UniqueObject(
            token=token,
            object_type=tracks.types[index],
            is_agent=tracks.types[index] in AGENT_TYPES,
            heading=float(poses[index, first[index], 2]),
            velocity=poses[index, first[index], 3:5].copy(),
        )
        for index, token in enumerate(tokens)
    }
    half_length, half_width = tracks.length / 2.0, tracks.width / 2.0
    # (tracks, steps, 5) rows of BOX_POSE_COLUMNS
    box_table = np.concatenate([poses[..., :3], np.broadcast_to(half_length[:, None, None], present.shape + (1,)),
                                np.broadcast_to(half_width[:, None, None], present.shape + (1,))], axis=-1)

    if version == "v2" and tokens:
        ego_pose = scene.current_frame.ego_status.ego_pose if ego_state is None else ego_state
        ego_quad = ego_corners(np.asarray(ego_pose, dtype=np.float64)[:3])
        first_corners = box_corners(poses[:, 0, :2], poses[:, 0, 2], half_length, half_width)
        # A polygon lies within the bounds of its corners, so only boxes whose bounds meet the ego's can touch
        # it: the exact test runs on those (a city scene has hundreds of boxes, a handful near the ego).
        box_bounds, ego_bounds = corner_bounds(first_corners), corner_bounds(ego_quad)
        near = present[:, 0] & _boxes_overlap(box_bounds, ego_bounds)
        touching = np.zeros(len(tokens), dtype=bool)
        if near.any():
            touching[near] = shapely.intersects(polygons_from_corners(first_corners[near]),
                                                polygons_from_corners(ego_quad))
        keep = ~touching
        tokens = [t for t, k in zip(tokens, keep) if k]
        present, box_table = present[keep], box_table[keep]
        unique_objects = {t: unique_objects[t] for t in tokens}

    # Step-major: each step's present boxes in track order, as views of one table. The boxes are given by their
    # poses; `Observation` makes their corners, and polygons only if a scorer step needs them.
    entry_step, entry_track = np.nonzero(present.T)
    step_sizes = present.sum(axis=0).tolist()
    tokens_per_step = split_rows(_object_array(tokens)[entry_track], step_sizes)
    poses_per_step = split_rows(box_table[entry_track, entry_step], step_sizes)
    polygons_per_step = [np.zeros(0, dtype=object) for _ in range(num_steps)]
    if version == "v2":
        route_ids = scene.current_frame.roadblock_ids if route_roadblock_ids is None else route_roadblock_ids
        obstacles_per_step = _red_light_obstacles(scene, num_steps, route_lane_ids, route_ids, map_api,
                                                  SceneRedLights(scene.frames) if red_lights is None else red_lights)
        for step, obstacles in enumerate(obstacles_per_step):
            if not obstacles:
                continue
            light_tokens, light_polygons = zip(*obstacles)
            tokens_per_step[step] = np.concatenate([tokens_per_step[step], _object_array(light_tokens)])
            polygons_per_step[step] = np.concatenate([polygons_per_step[step], _object_array(light_polygons)])
            for token in light_tokens:
                unique_objects.setdefault(token, UniqueObject(token, RED_LIGHT_TYPE, False, 0.0, np.zeros(2)))
    return Observation(tokens_per_step, polygons_per_step, unique_objects, box_poses_per_step=poses_per_step)
