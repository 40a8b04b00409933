"""Observation container and the ground-truth observation (spec §3.5, §3.6)."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from navsim_eval.pdm.errors import ObservationError
from navsim_eval.pdm.observation import Observation, UniqueObject, build_ground_truth_observation, red_light_token
from tests.navsim_eval.pdm.scorer_golden import golden_cache, intermediates, scenes_info


def _box(x, y, length=4.0, width=2.0):
    return shapely.box(x - length / 2, y - width / 2, x + length / 2, y + width / 2)


def test_container_query_matches_same_step_only():
    unique = {"a": UniqueObject("a", "vehicle", True, 0.0, np.array([1.0, 0.0]))}
    observation = Observation([["a"], [], ["a", red_light_token(7)]],
                              [[_box(0, 0)], [], [_box(10, 0), _box(20, 0)]], unique)
    ego = np.array([_box(0.5, 0), _box(0.5, 0), _box(10.5, 0)], dtype=object)
    query, entry = observation.query(ego, np.array([0, 1, 2]))
    assert sorted(zip(query.tolist(), observation.flat().tokens[entry].tolist())) == [(0, "a"), (2, "a")]
    corners = np.array([np.asarray(p.exterior.coords)[:4] for p in ego])
    q2, e2 = observation.query_corners(corners, np.array([0, 1, 2]))
    assert sorted(q2.tolist()) == sorted(query.tolist())
    flat = observation.flat()
    assert flat.is_red_light.tolist() == [False, False, True]


def test_container_rejects_inconsistent_input():
    with pytest.raises(ObservationError):
        Observation([["a"]], [[]], {})
    with pytest.raises(ObservationError, match="unique object"):
        Observation([["ghost"]], [[_box(0, 0)]], {}).flat()


def test_ground_truth_observation_of_golden_scenes(golden_dir):
    """Lengths, red lights (v2) equal to the golden per-step connector lists, single-frame tracks everywhere."""
    logs = list(scenes_info(golden_dir)["logs"].values())
    red_steps = 0
    for log in logs:
        token = log["tokens"][4]
        v1 = golden_cache(golden_dir, token, "v1").observation
        v2 = golden_cache(golden_dir, token, "v2").observation
        assert v1.num_steps == 51 and v2.num_steps == 41
        golden_red = intermediates(golden_dir, token)["v2_red_light_connectors_per_step"]
        for step in range(41):
            ours = sorted(t[len("red_light_"):] for t in v2.tokens(step) if t.startswith("red_light_"))
            expected = sorted(x for x in str(golden_red[step]).split(",") if x)
            assert ours == expected, (token, step)
            red_steps += bool(ours)
        assert not any(t.startswith("red_light_") for k in range(51) for t in v1.tokens(k))
    assert red_steps > 0


def test_v2_removes_tracks_touching_the_ego_at_step_zero(golden_dir):
    from data_pipelines.maps import load_map
    from tests.navsim_eval.pdm.scorer_golden import _loader

    token = next(iter(scenes_info(golden_dir)["logs"].values()))["tokens"][0]
    scene = _loader(golden_dir).get_scene_from_token(token)
    map_api = load_map(golden_dir / "maps", scene.scene_metadata.map_name)
    # Put a copy of an annotated box onto the ego footprint: v1 keeps it, v2 removes it.
    frame = scene.current_frame
    annotations = frame.annotations
    annotations.boxes = np.concatenate([annotations.boxes, [[1.5, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]]])
    annotations.names = list(annotations.names) + ["vehicle"]
    annotations.velocity_3d = np.concatenate([annotations.velocity_3d, [[0.0, 0.0, 0.0]]])
    annotations.track_tokens = list(annotations.track_tokens) + ["on_ego"]
    annotations.instance_tokens = list(annotations.instance_tokens) + ["on_ego"]
    v1 = build_ground_truth_observation(scene, "v1", map_api=map_api)
    v2 = build_ground_truth_observation(scene, "v2", map_api=map_api)
    assert all("on_ego" in v1.tokens(k) for k in range(51))  # single-frame track: present at every step
    assert not any("on_ego" in v2.tokens(k) for k in range(41))


def _interpolate_one_track(times, samples, step_times):
    """The per-track definition (§3.5): np.interp over the seen samples, headings unwrapped then wrapped."""
    if len(times) == 1:
        return np.ones(len(step_times), dtype=bool), np.repeat(samples, len(step_times), axis=0)
    present = (step_times >= times[0]) & (step_times <= times[-1])
    out = np.empty((len(step_times), samples.shape[1]))
    unwrapped = np.unwrap(samples[:, 2])
    for column in range(samples.shape[1]):
        out[:, column] = np.interp(step_times, times, unwrapped if column == 2 else samples[:, column])
    out[:, 2] = np.arctan2(np.sin(out[:, 2]), np.cos(out[:, 2]))
    return present, out


def test_interpolated_tracks_equal_the_per_track_definition_bit_for_bit():
    """Gaps, late starts, early ends, single samples and headings crossing ±pi, all tracks in one call."""
    from navsim_eval.pdm.observation import _interpolate_tracks

    rng = np.random.default_rng(7)
    num_tracks, num_frames = 300, 11
    seen = rng.random((num_tracks, num_frames)) < 0.7
    seen[0] = True  # seen in every frame
    seen[1] = False
    seen[1, 4] = True  # seen once
    seen[2] = False
    seen[2, [0, 10]] = True  # only at both ends
    seen[~seen.any(axis=1), 5] = True
    samples = rng.normal(scale=30.0, size=(num_tracks, num_frames, 5))
    samples[..., 2] = rng.uniform(-np.pi, np.pi, size=(num_tracks, num_frames))
    samples[3, :, 2] = np.where(np.arange(num_frames) % 2 == 0, 3.1, -3.1)  # wraps every frame
    frame_times = np.arange(num_frames, dtype=np.float64) * 0.5
    step_times = np.arange(51) * 0.1

    present, poses = _interpolate_tracks(seen, samples, frame_times, step_times)

    for track in range(num_tracks):
        columns = np.flatnonzero(seen[track])
        expected_present, expected = _interpolate_one_track(frame_times[columns], samples[track, columns], step_times)
        assert np.array_equal(present[track], expected_present), track
        assert np.array_equal(poses[track], expected), track


def test_interpolation_needs_ascending_frame_times():
    from navsim_eval.pdm.observation import _interpolate_tracks

    seen = np.ones((1, 3), dtype=bool)
    with pytest.raises(ValueError, match="ascending"):
        _interpolate_tracks(seen, np.zeros((1, 3, 5)), np.array([0.0, 1.0, 0.5]), np.arange(5) * 0.1)


def test_track_listed_twice_in_a_frame_is_an_error_naming_the_frame(golden_dir):
    from tests.navsim_eval.pdm.scorer_golden import _loader

    token = next(iter(scenes_info(golden_dir)["logs"].values()))["tokens"][0]
    scene = _loader(golden_dir).get_scene_from_token(token)
    frame = scene.current_frame
    annotations = frame.annotations
    if len(annotations.names) == 0:
        pytest.skip("golden scene without boxes")
    annotations.boxes = np.concatenate([annotations.boxes, annotations.boxes[:1]])
    annotations.names = list(annotations.names) + [annotations.names[0]]
    annotations.velocity_3d = np.concatenate([annotations.velocity_3d, annotations.velocity_3d[:1]])
    annotations.track_tokens = list(annotations.track_tokens) + [annotations.track_tokens[0]]
    annotations.instance_tokens = list(annotations.instance_tokens) + [annotations.instance_tokens[0]]
    with pytest.raises(ObservationError, match=f"frame {frame.token}.*{annotations.track_tokens[0]}"):
        build_ground_truth_observation(scene, "v1")


def test_flat_centroids_are_geos_centroids_computed_only_when_asked():
    unique = {t: UniqueObject(t, "vehicle", True, 0.0, np.zeros(2)) for t in "abc"}
    static = shapely.Polygon([(0, 0), (3, 0), (3, 1), (1, 2)])
    polygons = [[static, _box(5, 1, 3.3, 1.7)], [static, _box(9, -2)], [_box(-4, 4, 1.0, 0.5)]]
    observation = Observation([["a", "b"], ["a", "c"], ["b"]], polygons, unique)
    flat = observation.flat()
    entries = np.array([3, 0, 2])
    expected = shapely.centroid(flat.polygons_of(entries))
    assert np.array_equal(flat.centroids(entries),
                          np.stack([shapely.get_x(expected), shapely.get_y(expected)], axis=-1))
    # Entries 0 and 2 are the static polygon (one outline); outlines never asked for stay uncomputed.
    assert flat.outline[0] == flat.outline[2]
    assert np.isnan(flat._outline_centroids[:, 0]).sum() == len(flat.outline_entry) - 2
    assert np.array_equal(flat.centroids(np.array([2])), flat.centroids(np.array([0])))


def test_boxes_given_by_corners_equal_boxes_given_as_polygons_and_are_made_only_when_asked():
    """The ground-truth observation keeps its boxes as corners: the scorer's tables, the cache file's round trip,
    the queries, centroids and polygons (made on demand) equal those of the same boxes given as polygons; other
    entries (a shared red-light polygon, a degenerate box) keep their polygon path."""
    from navsim_eval.pdm.footprint import box_corners, polygons_from_corners
    from navsim_eval.pdm.metric_cache import _observation_from_plain, _observation_to_plain

    rng = np.random.default_rng(3)
    unique = {t: UniqueObject(t, "vehicle", True, 0.0, np.zeros(2)) for t in "abcd"}
    light = shapely.Polygon([(0, 0), (6, 0), (6, 3), (2, 5)])
    corners = [box_corners(rng.normal(size=(n, 2)) * 8, rng.uniform(-3, 3, n), 2.2, np.array([1.0] * (n - 1) + [0.0]))
               for n in (3, 1, 2)]  # the last box of each step has zero width: not a convex quad
    tokens = [["a", "b", "c", red_light_token(1)], ["d", red_light_token(1)], ["a", "b"]]
    others = [[light], [light], []]
    by_corners = Observation(tokens, others, unique, box_corners_per_step=corners)
    as_polygons = Observation(tokens, [list(polygons_from_corners(c)) + o for c, o in zip(corners, others)], unique)
    fast, reference = by_corners.flat(), as_polygons.flat()
    assert by_corners._polygons is None  # nothing made yet
    for name in ("step", "offsets", "bounds", "quad_corners", "is_convex_quad", "token_ids", "is_red_light"):
        assert np.array_equal(getattr(fast, name), getattr(reference, name)), name
    assert fast.is_convex_quad.tolist() == [True, True, False, True, False, True, True, False]  # zero-width: no
    rings = lambda flat, e: flat.outlines.coordinates[  # noqa: E731 - the closed run of entry e's outline
        flat.outlines.coordinate_start[flat.outlines.ring_start[flat.outline[e]]]:
        flat.outlines.coordinate_start[flat.outlines.ring_start[flat.outline[e]] + 1]]
    for entry in range(len(fast.step)):
        assert np.array_equal(rings(fast, entry), rings(reference, entry))
    assert fast.outline[3] == fast.outline[5]  # the red light is one outline at both steps
    plain = _observation_to_plain(by_corners)  # the cache file keeps the corners: nothing is made
    assert np.array_equal(plain["box_corners"], np.concatenate(corners)) and by_corners._polygons is None
    reloaded = _observation_from_plain(plain).flat()
    for name in ("bounds", "quad_corners", "is_convex_quad", "token_ids"):  # (the file does not keep sharing)
        assert np.array_equal(getattr(reloaded, name), getattr(fast, name)), name
    entries = np.arange(len(fast.step))
    assert all(p.equals_exact(q, 0.0) for p, q in zip(fast.polygons_of(entries), reference.polygons_of(entries)))
    assert np.array_equal(fast.centroids(entries), reference.centroids(entries))
    assert by_corners._polygons is None
    ego = polygons_from_corners(corners[0][:1] + 0.5)
    assert [a.tolist() for a in by_corners.query(ego, np.array([0]))] == \
           [a.tolist() for a in as_polygons.query(ego, np.array([0]))]
    for k in range(3):
        assert all(p.equals_exact(q, 0.0) for p, q in zip(by_corners.polygons(k), as_polygons.polygons(k)))


def test_boxes_given_by_pose_are_their_corners_and_the_cache_file_keeps_the_poses():
    """A ground-truth observation gives its boxes as poses: the corners are `box_corners` of them bit for bit
    (the many-box and the few-box forms alike), the stored form keeps the poses, and a reload gives the same
    corners; an observation given corners stores corners."""
    from navsim_eval.pdm.footprint import MANY_BOXES, box_corners
    from navsim_eval.pdm.metric_cache import _observation_from_plain, _observation_to_plain
    from navsim_eval.pdm.observation import BOX_POSE_COLUMNS

    rng = np.random.default_rng(11)
    unique = {t: UniqueObject(t, "vehicle", True, 0.0, np.zeros(2)) for t in map(str, range(MANY_BOXES))}
    sizes = (3, 0, MANY_BOXES)  # below and above the many-box threshold, and an empty step
    poses = [np.column_stack([rng.normal(scale=50.0, size=(n, 2)), rng.uniform(-np.pi, np.pi, n),
                              rng.uniform(0.5, 3.0, n), rng.uniform(0.3, 1.2, n)]) for n in sizes]
    tokens = [[str(i) for i in range(n)] for n in sizes]
    by_pose = Observation(tokens, [[]] * 3, unique, box_poses_per_step=poses)
    assert by_pose.has_box_poses and len(BOX_POSE_COLUMNS) == 5
    for step, table in enumerate(poses):
        expected = box_corners(table[:, :2], table[:, 2], table[:, 3], table[:, 4])
        assert np.array_equal(by_pose.entry_parts(step)[0], expected)
        for i in range(len(table)):  # one box at a time: the same numbers
            assert np.array_equal(by_pose.entry_parts(step)[0][i], box_corners(table[i, :2], table[i, 2], table[i, 3],
                                                                               table[i, 4]))
    plain = _observation_to_plain(by_pose)
    assert "box_corners" not in plain and np.array_equal(plain["box_poses"], np.concatenate(poses))
    reloaded = _observation_from_plain(plain)
    for step in range(3):
        assert np.array_equal(reloaded.entry_parts(step)[0], by_pose.entry_parts(step)[0])
        assert np.array_equal(reloaded.box_poses(step), poses[step])
    by_corners = Observation(tokens, [[]] * 3, unique, box_corners_per_step=[by_pose.entry_parts(k)[0] for k in range(3)])
    assert not by_corners.has_box_poses and "box_poses" not in _observation_to_plain(by_corners)
    with pytest.raises(ObservationError, match="holds no poses"):
        by_corners.box_poses(0)
    with pytest.raises(ObservationError, match="not both"):
        Observation(tokens, [[]] * 3, unique, box_poses_per_step=poses,
                    box_corners_per_step=[by_pose.entry_parts(k)[0] for k in range(3)])


def test_steps_listing_the_same_corner_array_share_its_box_outlines():
    """A forecast lists each map's corner array at two steps: those boxes get one outline each (tables built
    once), and every per-entry table, query, centroid and polygon equals that of the same boxes copied per step."""
    from navsim_eval.pdm.footprint import box_corners

    rng = np.random.default_rng(8)
    unique = {t: UniqueObject(t, "vehicle", True, 0.0, np.zeros(2)) for t in "ab"}
    light = shapely.Polygon([(0, 0), (6, 0), (6, 3), (2, 5)])
    maps = [box_corners(rng.normal(size=(2, 2)) * 6, rng.uniform(-3, 3, 2), 2.2, 1.0) for _ in range(2)]
    tokens = [["a", "b", red_light_token(1)]] * 4
    others = [[light]] * 4
    shared = Observation(tokens, others, unique, box_corners_per_step=[maps[0], maps[0], maps[1], maps[1]])
    copied = Observation(tokens, others, unique, box_corners_per_step=[m.copy() for m in (maps[0], maps[0],
                                                                                          maps[1], maps[1])])
    fast, reference = shared.flat(), copied.flat()
    assert len(fast.box_corners) == 4 and len(reference.box_corners) == 8
    assert fast.outline[:3].tolist() == fast.outline[3:6].tolist() and fast.outline[0] != fast.outline[6]
    assert np.array_equal(fast.step[fast.outline_entry[:4]], [0, 0, 2, 2])  # first entries of each box outline
    for name in ("step", "offsets", "bounds", "quad_corners", "is_convex_quad", "token_ids", "is_red_light"):
        assert np.array_equal(getattr(fast, name), getattr(reference, name)), name
    entries = np.arange(len(fast.step))
    assert all(p.equals_exact(q, 0.0) for p, q in zip(fast.polygons_of(entries), reference.polygons_of(entries)))
    assert np.array_equal(fast.centroids(entries), reference.centroids(entries))
    ego = box_corners(maps[1][:1, 0] + 0.5, np.zeros(1), 2.0, 1.0)
    for step in range(4):
        assert [a.tolist() for a in shared.query_corners(ego, np.array([step]))] == \
               [a.tolist() for a in copied.query_corners(ego, np.array([step]))]
        assert all(p.equals_exact(q, 0.0) for p, q in zip(shared.polygons(step), copied.polygons(step)))
