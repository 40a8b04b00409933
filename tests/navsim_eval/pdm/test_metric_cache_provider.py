"""MetricCacheProvider: caches built once from the caller's loader, reused from the store, rebuilt when stale."""

from __future__ import annotations

import copy

import pytest

from data_pipelines.maps import DEFAULT_MAP_VERSION
from navsim_eval.pdm.metric_cache import MetricCacheError, MetricCacheProvider, MetricCacheStore
from tests.navsim_eval.pdm.golden_cache import golden_loader, representative_tokens


class CountingProvider(MetricCacheProvider):
    builds = 0

    def build(self, scene):
        type(self).builds += 1
        return super().build(scene)


def _provider(golden_dir, store, **kwargs):
    CountingProvider.builds = 0
    return CountingProvider("v1", golden_loader(golden_dir), maps_root=golden_dir / "maps",
                            map_version=DEFAULT_MAP_VERSION, store=store, **kwargs)


def test_built_once_from_the_loader_then_reused(golden_dir, tmp_path):
    token = representative_tokens(golden_dir)[0]
    provider = _provider(golden_dir, tmp_path, memo_size=8)
    first = provider(token)
    assert CountingProvider.builds == 1 and token in MetricCacheStore(tmp_path)
    assert provider(token) is first  # memo
    again = _provider(golden_dir, tmp_path)(token)  # a new process: read from the store, not rebuilt
    assert CountingProvider.builds == 0
    assert again.source_fingerprint == first.source_fingerprint


def test_fingerprint_mismatch_is_rebuilt_or_reported(golden_dir, tmp_path):
    token = representative_tokens(golden_dir)[0]
    built = _provider(golden_dir, tmp_path)(token)
    stale = copy.copy(built)
    stale.source_fingerprint = {**built.source_fingerprint, "scene": "built from an older log"}
    MetricCacheStore(tmp_path).save(stale)

    with pytest.raises(MetricCacheError, match=f"{token}.*scene window's frames"):
        _provider(golden_dir, tmp_path, rebuild_stale=False)(token)
    rebuilt = _provider(golden_dir, tmp_path)(token)
    assert CountingProvider.builds == 1
    assert rebuilt.source_fingerprint == built.source_fingerprint
    assert MetricCacheStore(tmp_path).load(token).source_fingerprint == built.source_fingerprint


def test_missing_entry_without_building_names_the_token(golden_dir, tmp_path):
    token = representative_tokens(golden_dir)[0]
    with pytest.raises(MetricCacheError, match=f"{token}.*no cache entry"):
        _provider(golden_dir, tmp_path, build_missing=False)(token)
    assert CountingProvider.builds == 0


@pytest.mark.parametrize("damage", [b"not a metric cache", b""])
def test_corrupt_entry_is_rebuilt_when_the_scene_is_at_hand(golden_dir, tmp_path, damage):
    token = representative_tokens(golden_dir)[0]
    built = _provider(golden_dir, tmp_path)(token)
    path = MetricCacheStore(tmp_path).path(token)
    path.write_bytes(damage)  # e.g. a disk that filled up or a copy cut short

    with pytest.raises(MetricCacheError, match=f"{token}.*{path.name}.*unreadable"):
        _provider(golden_dir, tmp_path, rebuild_stale=False)(token)  # cannot rebuild: the error names the file
    rebuilt = _provider(golden_dir, tmp_path)(token)
    assert CountingProvider.builds == 1
    assert rebuilt.source_fingerprint == built.source_fingerprint
    assert MetricCacheStore(tmp_path).load(token).token == token  # the damaged file was replaced
