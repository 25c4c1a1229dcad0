"""A sorted set of integer keys with positional access, for the last-modified search index.

Why not a plain sorted list: a poll over 1,000,000 records moves every record it writes to
the end of the index, and deleting from the middle of a million-element list is a large
memmove per write. Why not ``sortedcontainers``: it is not a declared dependency of the
project. This is the same idea in miniature: the keys live in sorted blocks of about
``LOAD`` elements, so insertion and removal touch one block, ``bisect`` is two binary
searches and a position is a block offset plus an index.

Keys are ``modified_ms * ID_SPACE + numeric_id``: index order is (last-modified, id), which is
both the order of an ascending last-modified sort (ties broken by id) and, within one
millisecond, the order of ``hs_object_id``.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from itertools import accumulate
from typing import Iterator

ID_SPACE = 1 << 40  # record ids stay below 2**40 (about 1.1e12)
LOAD = 1000


def make_key(modified_ms: int, record_id: int) -> int:
    return modified_ms * ID_SPACE + record_id


def key_id(key: int) -> int:
    return key % ID_SPACE


def key_ms(key: int) -> int:
    return key // ID_SPACE


class SortedKeys:
    """Unique ints in ascending order; ``position`` and ``iterate`` work by rank."""

    def __init__(self) -> None:
        self._blocks: list[list[int]] = []
        self._maxes: list[int] = []
        self._len = 0
        self._offsets: list[int] | None = None

    def __len__(self) -> int:
        return self._len

    def clear(self) -> None:
        self._blocks, self._maxes, self._len, self._offsets = [], [], 0, None

    def add(self, key: int) -> None:
        self._offsets = None
        self._len += 1
        if not self._maxes:
            self._blocks.append([key])
            self._maxes.append(key)
            return
        block = bisect_left(self._maxes, key)
        if block == len(self._maxes):  # the common case: a write is the newest key
            block -= 1
            self._blocks[block].append(key)
            self._maxes[block] = key
        else:
            insort(self._blocks[block], key)
        if len(self._blocks[block]) > 2 * LOAD:
            keys = self._blocks[block]
            self._blocks[block:block + 1] = [keys[:LOAD], keys[LOAD:]]
            self._maxes[block:block + 1] = [keys[LOAD - 1], keys[-1]]

    def discard(self, key: int) -> bool:
        """Remove ``key`` if present; True when it was."""
        block = bisect_left(self._maxes, key)
        if block == len(self._maxes):
            return False
        keys = self._blocks[block]
        at = bisect_left(keys, key)
        if at == len(keys) or keys[at] != key:
            return False
        del keys[at]
        self._len -= 1
        self._offsets = None
        if keys:
            self._maxes[block] = keys[-1]
        else:
            del self._blocks[block], self._maxes[block]
        return True

    def _starts(self) -> list[int]:
        if self._offsets is None:
            self._offsets = [0, *accumulate(len(keys) for keys in self._blocks)]
        return self._offsets

    def position(self, key: int) -> int:
        """How many keys are smaller than ``key`` (``bisect_left`` over the whole set)."""
        block = bisect_left(self._maxes, key)
        if block == len(self._maxes):
            return self._len
        return self._starts()[block] + bisect_left(self._blocks[block], key)

    def count(self, low: int, high: int) -> int:
        """How many keys lie in [low, high]."""
        return max(0, self.position(high + 1) - self.position(low))

    def iterate(self, start: int, stop: int, *, reverse: bool = False) -> Iterator[int]:
        """Keys at ranks [start, stop), ascending (or descending with ``reverse``)."""
        start, stop = max(0, start), min(self._len, stop)
        if start >= stop:
            return
        starts = self._starts()
        if not reverse:
            block = bisect_right(starts, start) - 1
            at = start - starts[block]
            remaining = stop - start
            while remaining > 0:
                keys = self._blocks[block]
                chunk = keys[at:at + remaining]
                yield from chunk
                remaining -= len(chunk)
                block, at = block + 1, 0
        else:
            block = bisect_right(starts, stop - 1) - 1
            at = stop - 1 - starts[block]
            remaining = stop - start
            while remaining > 0:
                keys = self._blocks[block]
                low = max(0, at - remaining + 1)
                chunk = keys[low:at + 1]
                yield from reversed(chunk)
                remaining -= len(chunk)
                block -= 1
                if block >= 0:
                    at = len(self._blocks[block]) - 1
