"""Read the next page while this one is being worked on.

A poll alternates between waiting on the CRM (search latency, rate-limit pacing) and computing
journeys and writing. Fetching page k+1 in a background thread while page k is processed
overlaps the two. Only one page is ever held ahead (memory stays flat), pages arrive in order,
and an error in the reader is raised in the consumer at the point it would have occurred.
"""
from __future__ import annotations

import threading
from queue import Empty, Full, Queue
from typing import Iterator, TypeVar

T = TypeVar("T")
_POLL = 0.1


def prefetched(pages: Iterator[T], *, name: str = "prefetch") -> Iterator[T]:
    queue: Queue = Queue(maxsize=1)
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
