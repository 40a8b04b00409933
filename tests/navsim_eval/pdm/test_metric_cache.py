"""Metric cache against the golden intermediates, and the on-disk store."""

from __future__ import annotations

import copy
import pickle
import shutil
import zlib

import numpy as np
import pytest
import shapely

from navsim_eval.pdm import cache_fingerprint
from navsim_eval.pdm.metric_cache import (
    FORMAT_VERSION,
    MetricCacheError,
    MetricCacheStore,
    StaleMetricCacheError,
    build_metric_cache,
    build_metric_caches,
    expected_source_fingerprint,
)
from tests.data_pipelines.data_helpers import code_running_pickle
from tests.navsim_eval.pdm.golden_cache import golden_scene, golden_tokens, intermediates, representative_tokens

# Tolerance of the PDM-Closed reference states (golden README: 1e-6 m).
STATE_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def built(golden_dir):
    """Metric caches of every golden scene for both versions: {(token, version): cache}."""
    caches = {}
    for token in golden_tokens(golden_dir):
        scene, map_api = golden_scene(golden_dir, token)
        for version in ("v1", "v2"):
            caches[(token, version)] = build_metric_cache(scene, map_api, version)
    return caches


def test_reference_trajectory_matches_golden_for_all_scenes(golden_dir, built):
    failures = []
    for (token, version), cache in built.items():
        golden = intermediates(golden_dir, token)
        error = np.abs(cache.pdm_trajectory - golden[f"{version}_pdm_trajectory_states"]).max()
        if error > STATE_TOLERANCE:
            failures.append((token, version, cache.pdm_proposal_index, float(error)))
        np.testing.assert_array_equal(cache.pdm_trajectory_time_us, golden[f"{version}_pdm_trajectory_time_us"])
    assert failures == []


def test_cache_contents_match_golden(golden_dir, built):
    for token in representative_tokens(golden_dir):
        golden = intermediates(golden_dir, token)
        for version in ("v1", "v2"):
            cache = built[(token, version)]
            assert cache.token == token and cache.version == version
            assert cache.timepoint_us == int(golden["initial_time_us"])
            np.testing.assert_allclose(cache.ego_state, golden["initial_ego_state"], rtol=0, atol=1e-12)
            np.testing.assert_allclose(cache.centerline, golden[f"{version}_centerline"], rtol=0, atol=1e-9)
            assert cache.route_lane_ids == [str(i) for i in golden[f"{version}_route_lane_ids"]]
            assert cache.drivable_map.tokens == [str(t) for t in golden[f"{version}_drivable_tokens"]]
            assert cache.drivable_map.types == [str(t) for t in golden[f"{version}_drivable_types"]]
            if version == "v2":
                np.testing.assert_allclose(cache.human_trajectory, golden["v2_human_trajectory_poses"], atol=1e-8)
                np.testing.assert_allclose(cache.past_human_states, golden["v2_past_human_states"], atol=1e-12)
                np.testing.assert_array_equal(cache.past_human_time_us, golden["v2_past_human_time_us"])
            else:
                assert cache.human_trajectory is None and cache.past_human_states is None


def test_store_round_trip(tmp_path, golden_dir, built):
    token = representative_tokens(golden_dir)[0]
    store = MetricCacheStore(tmp_path / "cache")
    original = built[(token, "v2")]
    path = store.save(original)
    assert path.is_file() and token in store and store.tokens() == [token]
    loaded = store.load(token)
    for name in ("token", "log_name", "map_location", "version", "timepoint_us", "route_lane_ids",
                 "route_roadblock_ids", "original_route_roadblock_ids", "starting_lane_id", "pdm_proposal_index"):
        assert getattr(loaded, name) == getattr(original, name)
    for name in ("ego_state", "pdm_trajectory", "pdm_trajectory_time_us", "centerline", "human_trajectory",
                 "past_human_states", "past_human_time_us"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    assert loaded.drivable_map.tokens == original.drivable_map.tokens
    assert all(a.equals_exact(b, 0.0) for a, b in zip(loaded.drivable_map.polygons, original.drivable_map.polygons))
    assert loaded.observation.num_steps == original.observation.num_steps
    for k in (0, original.observation.num_steps - 1):
        assert list(loaded.observation.tokens(k)) == list(original.observation.tokens(k))
        assert all(shapely.equals_exact(loaded.observation.polygons(k), original.observation.polygons(k), 0.0))
    assert loaded.observation.unique_objects.keys() == original.observation.unique_objects.keys()
    assert loaded.observation.collided_tokens == original.observation.collided_tokens


def test_store_errors_name_the_token(tmp_path, golden_dir, built):
    store = MetricCacheStore(tmp_path)
    with pytest.raises(MetricCacheError, match="'nope'.*no cache entry"):
        store.load("nope")
    token = representative_tokens(golden_dir)[1]
    path = store.save(built[(token, "v1")])
    data = pickle.loads(zlib.decompress(path.read_bytes()))
    data["format_version"] = FORMAT_VERSION + 1
    path.write_bytes(zlib.compress(pickle.dumps(data)))
    with pytest.raises(MetricCacheError, match=f"{token}.*stale"):
        store.load(token)
    path.write_bytes(b"garbage")
    with pytest.raises(MetricCacheError, match=f"{token}.*unreadable"):
        store.load(token)


def test_code_running_cache_entry_is_refused(tmp_path):
    marker = tmp_path / "ran"
    store = MetricCacheStore(tmp_path)
    store.path("tok").write_bytes(zlib.compress(code_running_pickle(marker, wrap=lambda payload: {"token": payload})))
    with pytest.raises(MetricCacheError, match=r"tok\.mcache.*references .*system.*metric cache format"):
        store.load("tok")
    assert not marker.exists()


def test_batch_build_records_failures_and_continues(tmp_path, golden_dir):
    tokens = representative_tokens(golden_dir)[:2]
    good, _ = golden_scene(golden_dir, tokens[0])
    broken = copy.deepcopy(golden_scene(golden_dir, tokens[1])[0])
    broken.current_frame.roadblock_ids = ["424242"]
    store = MetricCacheStore(tmp_path)
    failures = build_metric_caches([broken, good], golden_dir / "maps", "v1", store)
    assert list(failures) == [tokens[1]] and "424242" in failures[tokens[1]]
    assert store.tokens() == [tokens[0]]
    with pytest.raises(MetricCacheError, match=f"{tokens[1]}.*424242"):
        build_metric_cache(broken, golden_scene(golden_dir, tokens[1])[1], "v1")
    with pytest.raises(ValueError, match="v3"):
        build_metric_cache(good, golden_scene(golden_dir, tokens[0])[1], "v3")


def test_stale_entries_name_what_changed(tmp_path, golden_dir, built):
    token = representative_tokens(golden_dir)[2]
    scene, _ = golden_scene(golden_dir, token)
    store = MetricCacheStore(tmp_path / "cache")
    store.save(built[(token, "v1")])
    # Map files are compared by content: an identical copy of the maps root matches the stored fingerprint.
    maps = tmp_path / "maps"
    shutil.copytree(golden_dir / "maps", maps)
    expected = expected_source_fingerprint(scene, maps, "v1")
    assert store.load(token, expected).token == token
    # A moved box in a future frame of the window changes the scene part.
    moved = copy.deepcopy(scene)
    frame = next(f for f in moved.frames[moved.current_frame_index + 1:] if f.annotations and len(f.annotations.names))
    frame.annotations.boxes[0, 0] += 2.0
    with pytest.raises(StaleMetricCacheError, match=f"{token}.*scene window's frames") as error:
        store.load(token, expected_source_fingerprint(moved, maps, "v1"))
    assert error.value.changed == ["scene"]
    # A changed map file changes the map part.
    map_file = maps / scene.scene_metadata.map_name
    gpkg = next(map_file.rglob("*.gpkg"))
    gpkg.chmod(0o644)
    with gpkg.open("ab") as stream:
        stream.write(b"\0")
    with pytest.raises(StaleMetricCacheError, match="map file changed") as error:
        store.load(token, expected_source_fingerprint(scene, maps, "v1"))
    assert error.value.changed == ["map"]
    # A v1 entry does not stand for v2 (other metric, and v2 reads fewer future frames).
    assert cache_fingerprint.changed_parts(built[(token, "v1")].source_fingerprint,
                                           expected_source_fingerprint(scene, golden_dir / "maps", "v2")) \
        == ["metric", "scene"]


def test_scene_fingerprint_follows_the_red_lights_a_cache_reads(golden_dir):
    """The cache reads the RED lane connectors of the current frame (v1, v2) and of the next 8 frames (v2's
    red-light steps): a light turning red there changes the scene part; a green light, or a red one in a frame
    the version does not read, does not."""
    token = representative_tokens(golden_dir)[0]
    scene, _ = golden_scene(golden_dir, token)

    def with_light(offset: int, is_red: bool):
        changed = copy.deepcopy(scene)
        frame = changed.frames[scene.current_frame_index + offset]
        frame.traffic_lights = list(frame.traffic_lights) + [(987654, is_red)]
        return changed

    for version, read, unread in (("v1", [0], [-1, 3]), ("v2", [0, 3, 8], [-1, 9])):
        base = cache_fingerprint.scene_fingerprint(scene, version)
        for offset in read:
            assert cache_fingerprint.scene_fingerprint(with_light(offset, True), version) != base, (version, offset)
            assert cache_fingerprint.scene_fingerprint(with_light(offset, False), version) == base, (version, offset)
        for offset in unread:
            assert cache_fingerprint.scene_fingerprint(with_light(offset, True), version) == base, (version, offset)


def test_load_or_build_rebuilds_stale_entries_only(tmp_path, golden_dir, built):
    token = representative_tokens(golden_dir)[3]
    scene, map_api = golden_scene(golden_dir, token)
    store = MetricCacheStore(tmp_path)
    store.save(built[(token, "v1")])
    calls = []

    def build(source):
        calls.append(source)
        return build_metric_cache(source, map_api, "v1")

    expected = expected_source_fingerprint(scene, golden_dir / "maps", "v1")
    store.load_or_build(token, expected, lambda: build(scene))
    assert calls == []
    moved = copy.deepcopy(scene)
    moved.frames[moved.current_frame_index + 1].ego_status.ego_pose[0] += 1.0
    rebuilt = store.load_or_build(token, expected_source_fingerprint(moved, golden_dir / "maps", "v1"),
                                  lambda: build(moved))
    assert calls == [moved] and rebuilt.source_fingerprint != built[(token, "v1")].source_fingerprint
    assert store.load(token, expected_source_fingerprint(moved, golden_dir / "maps", "v1")).token == token


def test_polygons_round_trip_exactly_through_plain_values():
    """Boxes as coordinate runs, polygons with holes as ragged runs, anything else (multi-part, empty) as WKB."""
    from navsim_eval.pdm.metric_cache import _polygons_from_plain, _polygons_to_plain

    rng = np.random.default_rng(2)
    boxes = list(shapely.polygons(rng.normal(scale=1e3, size=(6, 4, 2))))
    holed = shapely.box(0, 0, 10, 10).difference(shapely.box(2, 2, 4, 4))
    multi = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(3, 0, 4, 1)])
    for polygons, stored_as in ((boxes, "coordinates"), (boxes + [holed], "coordinates"),
                                (boxes + [multi], "wkb"), (boxes + [shapely.Polygon()], "wkb"), ([], "coordinates")):
        plain = _polygons_to_plain(np.array(polygons, dtype=object))
        assert stored_as in plain
        restored = _polygons_from_plain(plain)
        assert shapely.to_wkb(restored).tolist() == shapely.to_wkb(np.array(polygons, dtype=object)).tolist()
