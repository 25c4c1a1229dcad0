"""Sorted and hash indexes over the emulated org's records.

Why: incremental polling filters and sorts on ``SystemModstamp`` (or ``LastModifiedDate`` /
``CreatedDate``), and the benchmarks hold up to a million records. A scan per query would make
every poll O(N); :class:`SortedIndex` answers "where does this range start" in O(log N) and
yields keys from there, and :class:`HashIndex` answers ``Lookup__c IN (...)`` without a scan.

:class:`SortedIndex` is a bucketed sorted list (the idea behind the ``sortedcontainers``
package, which is not a runtime dependency of closedloop): inserts and removals touch one
bucket of at most a few thousand keys instead of shifting a million-element list.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from typing import Any, Iterator

_LOAD = 1000  # a bucket splits in two when it reaches twice this size


class SortedIndex:
    """A sorted multiset of comparable keys, e.g. ``(SystemModstamp, Id)`` tuples."""

    def __init__(self) -> None:
        self._buckets: list[list[Any]] = []
        self._maxes: list[Any] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, key: Any) -> None:
        self._len += 1
        if not self._buckets:
            self._buckets.append([key])
            self._maxes.append(key)
            return
        position = bisect_left(self._maxes, key)
        if position == len(self._maxes):  # beyond every key: the common case for "now" stamps
            position -= 1
            self._buckets[position].append(key)
            self._maxes[position] = key
        else:
            insort(self._buckets[position], key)
        bucket = self._buckets[position]
        if len(bucket) >= 2 * _LOAD:
            self._buckets[position:position + 1] = [bucket[:_LOAD], bucket[_LOAD:]]
            self._maxes[position:position + 1] = [bucket[_LOAD - 1], bucket[-1]]

    def discard(self, key: Any) -> None:
        position = bisect_left(self._maxes, key)
        if position == len(self._maxes):
            return
        bucket = self._buckets[position]
        index = bisect_left(bucket, key)
        if index == len(bucket) or bucket[index] != key:
            return
        del bucket[index]
        self._len -= 1
        if not bucket:
            del self._buckets[position]
            del self._maxes[position]
        elif index == len(bucket):
            self._maxes[position] = bucket[-1]

    def _locate(self, key: Any, right: bool) -> tuple[int, int]:
        """(bucket, offset) of the first key >= ``key`` (> ``key`` when ``right``)."""
        search = bisect_right if right else bisect_left
        position = search(self._maxes, key)
        if position == len(self._maxes):
            return position, 0
        return position, search(self._buckets[position], key)

    def rank(self, key: Any, right: bool = False) -> int:
        """How many keys sort before ``key`` (or not after it, when ``right``)."""
        position, offset = self._locate(key, right)
        return sum(len(bucket) for bucket in self._buckets[:position]) + offset

    def count(self, low: Any = None, high: Any = None) -> int:
        """Keys ``k`` with ``low <= k <= high`` (None: unbounded)."""
        start = self.rank(low) if low is not None else 0
        end = self.rank(high, right=True) if high is not None else self._len
        return max(0, end - start)

    def irange(self, low: Any = None, high: Any = None, reverse: bool = False) -> Iterator[Any]:
        """Keys ``low <= k <= high`` in order (descending when ``reverse``), lazily."""
        if reverse:
            yield from self._irange_reverse(low, high)
            return
        position, offset = self._locate(low, False) if low is not None else (0, 0)
        buckets = self._buckets
        while position < len(buckets):
            bucket = buckets[position]
            for index in range(offset, len(bucket)):
                key = bucket[index]
                if high is not None and key > high:
                    return
                yield key
            position, offset = position + 1, 0

    def _irange_reverse(self, low: Any, high: Any) -> Iterator[Any]:
        if high is not None:
            position, offset = self._locate(high, True)
        else:
            position, offset = len(self._buckets), 0
        if offset == 0:
            position -= 1
            offset = len(self._buckets[position]) if position >= 0 else 0
        while position >= 0:
            bucket = self._buckets[position]
            for index in range(offset - 1, -1, -1):
                key = bucket[index]
                if low is not None and key < low:
                    return
                yield key
            position -= 1
            offset = len(self._buckets[position]) if position >= 0 else 0


class HashIndex:
    """value → set of record ids, for equality and ``IN`` lookups on reference fields."""

    def __init__(self) -> None:
        self._ids: dict[Any, set[str]] = {}

    def add(self, value: Any, record_id: str) -> None:
        if value is not None:
            self._ids.setdefault(value, set()).add(record_id)

    def discard(self, value: Any, record_id: str) -> None:
        ids = self._ids.get(value)
        if ids is not None:
            ids.discard(record_id)
            if not ids:
                del self._ids[value]

    def get(self, value: Any) -> set[str]:
        return self._ids.get(value, set())
