"""A least-recently-used cache bounded by the bytes its values hold (decoded sensors, processed model inputs)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Hashable, Optional

BYTES_PER_MB = 2**20


class ByteBoundedLRU:
    """Values with their sizes in bytes; beyond ``max_mb`` the least recently used are evicted. A value larger than
    the whole bound is not kept (``put`` returns False); ``max_mb = 0`` keeps nothing."""

    def __init__(self, max_mb: float):
        if max_mb < 0:
            raise ValueError(f"max_mb must be >= 0, got {max_mb}")
        self.max_bytes = float(max_mb) * BYTES_PER_MB
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> Optional[Any]:
        """The value (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: Any, nbytes: int) -> bool:
        nbytes = int(nbytes)
        if nbytes > self.max_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        while self._entries and self.nbytes + nbytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.nbytes -= evicted
        self._entries[key] = (value, nbytes)
        self.nbytes += nbytes
        return True
