"""Reading ahead and writing behind: order, depth, errors and stops (sync/jobs/prefetch.py)."""
from __future__ import annotations

import threading

import pytest

from sync.jobs.prefetch import WriteBehind, prefetched


def test_prefetched_pages_arrive_in_order_and_a_reader_error_is_raised_where_it_happened():
    def pages():
        yield from ([1], [2], [3])
        raise RuntimeError("search failed")

    seen = []
    with pytest.raises(RuntimeError, match="search failed"):
        for page in prefetched(pages(), depth=2):
            seen.append(page)
    assert seen == [[1], [2], [3]]


def test_prefetched_reads_no_more_than_depth_pages_ahead():
    read, fourth_read = [], threading.Event()

    def pages():
        for n in range(10):
            read.append(n)
            if n == 3:
                fourth_read.set()
            yield n

    stream = prefetched(pages(), depth=2)
    assert next(stream) == 0
    assert fourth_read.wait(5)  # 0 handed over, 1 and 2 queued, 3 read and waiting for room
    threading.Event().wait(0.05)  # room for a runaway reader to show itself
    assert read == [0, 1, 2, 3]
    assert list(stream) == list(range(1, 10))


def test_write_behind_runs_tasks_in_order_and_at_most_depth_are_pending():
    done, gate = [], threading.Event()

    def task(n):
        def run():
            gate.wait(5)
            done.append(n)
        return run

    writes = WriteBehind(depth=2)
    with writes:
        writes.submit(task(1), {"a"})
        writes.submit(task(2), {"b"})
        assert len(writes._pending) == 2
        gate.set()
        writes.submit(task(3), {"c"})  # waited for the first to make room
        assert done[:1] == [1]
    assert done == [1, 2, 3]


def test_after_a_failed_task_the_later_ones_do_not_run_and_the_error_is_raised():
    ran, gate = [], threading.Event()

    def fail():
        gate.wait(5)
        raise ConnectionError("HubSpot is down")

    with pytest.raises(ConnectionError, match="HubSpot is down"):
        with WriteBehind(depth=3) as writes:
            writes.submit(fail, {"a"})
            writes.submit(lambda: ran.append("commits a later cursor"), {"b"})
            gate.set()
    assert ran == []


def test_reading_records_a_pending_task_writes_waits_for_it():
    done, gate = [], threading.Event()
    with WriteBehind(depth=3) as writes:
        writes.submit(lambda: (gate.wait(5), done.append("page 1")), {"r1", "r2"})
        writes.wait_if_touching({"r9"})
        assert done == []
        gate.set()
        writes.wait_if_touching({"r2", "r9"})
        assert done == ["page 1"]


def test_an_error_in_the_caller_still_lets_pending_tasks_finish():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with WriteBehind(depth=2) as writes:
            writes.submit(lambda: done.append(1))
            raise KeyboardInterrupt
    assert done == [1]


def test_disabled_runs_inline():
    done = []
    with WriteBehind(enabled=False) as writes:
        writes.submit(lambda: done.append(threading.current_thread().name))
        assert done == [threading.current_thread().name]


def test_pages_are_regrouped_into_whole_write_batches_in_order():
    from sync.jobs.enrich import whole_batches

    pages = [list(range(0, 200)), list(range(200, 337)), list(range(337, 400)), list(range(400, 450))]
    regrouped = list(whole_batches(pages, 100))
    assert [len(page) for page in regrouped] == [200, 100, 100, 50]
    assert [record for page in regrouped for record in page] == list(range(450))
