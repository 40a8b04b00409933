"""The byte-bounded least-recently-used cache behind the decoded-input and processed-input caches."""

import pytest

from data_pipelines.lru_cache import BYTES_PER_MB, ByteBoundedLRU


def test_evicts_least_recently_used_first_and_keeps_the_byte_bound():
    cache = ByteBoundedLRU(max_mb=250 / BYTES_PER_MB)
    assert cache.put("a", 1, 100) and cache.put("b", 2, 100)
    assert cache.get("a") == 1  # "a" is now the most recently used
    assert cache.put("c", 3, 100)  # 300 > 250: evicts "b"
    assert "b" not in cache and cache.get("b") is None
    assert cache.get("a") == 1 and cache.get("c") == 3 and cache.nbytes == 200 and len(cache) == 2
    assert cache.put("a", 4, 150)  # replacing a key frees its old size first: 100 + 150 fits, nothing evicted
    assert cache.get("a") == 4 and cache.get("c") == 3 and cache.nbytes == 250
    assert cache.put("d", 5, 100)  # evicts "a" (used before "c"), then 150 + 100 fits
    assert "a" not in cache and cache.get("c") == 3 and cache.get("d") == 5 and cache.nbytes == 200


def test_values_larger_than_the_bound_and_a_zero_bound_keep_nothing():
    cache = ByteBoundedLRU(max_mb=100 / BYTES_PER_MB)
    cache.put("small", 0, 60)
    assert not cache.put("huge", 0, 101)
    assert "huge" not in cache and cache.get("small") == 0 and cache.nbytes == 60
    empty = ByteBoundedLRU(max_mb=0)
    assert not empty.put("x", 0, 1) and len(empty) == 0
    with pytest.raises(ValueError, match="max_mb"):
        ByteBoundedLRU(max_mb=-1)
