"""Overlap a poll's waits on the CRM with its computing.

A poll alternates between waiting on the CRM (search latency, rate-limit pacing, batch writes)
and computing journeys. Two helpers overlap them, each a few pages deep at most so memory stays flat:

- :func:`prefetched` reads the next pages in a background thread while page k is worked on;
- :class:`WriteBehind` writes and commits the last pages in a background thread while page k
  is computed.

The CRM's two rate limits (HubSpot: searches per second, other calls per ten seconds) are
then spent side by side, and a slow moment in one stage does not idle the others.

Pages stay in order, and an error in the background is raised in the caller at the point it
would have occurred without them.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, Full, Queue
from typing import Callable, Collection, Iterator, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
_POLL = 0.1


def prefetched(pages: Iterator[T], *, name: str = "prefetch", depth: int = 1) -> Iterator[T]:
    """``pages``, read up to ``depth`` pages ahead in a background thread."""
    queue: Queue = Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=_POLL)
                return True
            except Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if not put(("page", page)):
                    return
            put(("done", None))
        except BaseException as error:  # handed to the consumer, raised there
            put(("error", error))

    thread = threading.Thread(target=read, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                kind, value = queue.get(timeout=_POLL)
            except Empty:
                if not thread.is_alive() and queue.empty():
                    return
                continue
            if kind == "page":
                yield value
            elif kind == "done":
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join(timeout=120)


class WriteBehind:
    """Runs tasks in a background thread, one at a time, in the order submitted.

    Up to ``depth`` tasks may be pending; ``submit`` waits (re-raising a task's error) when
    more would be. Once a task has failed, the ones after it are skipped and fail the same way:
    each task commits a cursor, and a later page must never commit past an earlier one that
    did not. ``wait_if_touching(keys)`` lets the caller wait when a pending task works on
    records it is about to read. Leaving the ``with`` block waits for every pending task, even
    on an error (a task is a whole unit, write and commit, and is never cut off); tasks that
    should not start after a stop check for it themselves. With ``enabled=False`` tasks run
    inline.
    """

    def __init__(self, *, name: str = "write-behind", enabled: bool = True, depth: int = 1) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name) if enabled else None
        self._depth = max(1, depth)
        self._pending: deque[tuple[Future, frozenset]] = deque()
        self._failed: BaseException | None = None

    def submit(self, task: Callable[[], None], keys: Collection = ()) -> None:
        if self._executor is None:
            task()
            return
        while len(self._pending) >= self._depth:
            self._pending[0][0].result()
            self._pending.popleft()
        self._pending.append((self._executor.submit(self._run, task), frozenset(keys)))

    def _run(self, task: Callable[[], None]) -> None:
        if self._failed is not None:
            raise self._failed
        try:
            task()
        except BaseException as error:
            self._failed = error
            raise

    def wait(self) -> None:
        """Until every pending task is done; the first error is raised."""
        while self._pending:
            future, _ = self._pending.popleft()
            future.result()

    def wait_if_touching(self, keys: Collection) -> None:
        if any(not pending.isdisjoint(keys) for _, pending in self._pending):
            self.wait()

    def __enter__(self) -> "WriteBehind":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if error is None:
                self.wait()
                return
            for future, _ in self._pending:  # let them finish; the error in hand is the one raised
                future.exception()
            if self._failed is not None and not isinstance(self._failed, type(error)):  # a stop: both stopped
                log.error("a background page write failed too: %s", self._failed, exc_info=self._failed)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
