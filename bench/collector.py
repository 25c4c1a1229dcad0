"""Collector throughput and latency: ``POST /collect`` under load, on SQLite and PostgreSQL.

Method, per store:

1. A fresh state database is created and migrated: a SQLite file in a temp dir, or a
   database on a private PostgreSQL server that this benchmark initialises, starts (as the
   ``postgres`` user when run as root, on a free loopback port, with the server's default
   durability settings) and removes afterwards.
2. ``closedloop collector --config FILE`` is started as a subprocess — the production
   server path: uvicorn, the Starlette app and the batched :class:`BeaconWriter` — and
   polled until ``GET /healthz`` answers 200.
3. ``wrk`` (closed loop: each connection sends its next request when the previous one is
   answered) posts valid pageview beacons as a browser would: ``Content-Type: text/plain``,
   the allowed ``Origin``, a desktop ``User-Agent``, and a new visitor id on every request,
   so each beacon stores a visitor, a touchpoint and a GA client-id identity. A short
   warm-up run comes first and is not measured. A Lua ``done()`` hook reports requests,
   duration, latency percentiles and responses by status. wrk runs 2 threads, because the
   machine's cores are shared by the load generator, the collector and (for PostgreSQL) the
   database server. Unpaced (the default) the latencies are those of a saturated collector
   with ``--connections`` requests outstanding. ``--rate N`` paces wrk to N beacons/s (a
   fixed send schedule per wrk thread, in Lua ``delay()``) to see the latency at a given
   load instead; a send that slipped behind its slot is made up at once, but wrk times a
   request from when it is sent, so a stall shows in fewer samples than it delays.
4. Two rates come out of the measured run: beacons *answered* per second (wrk's count)
   and beacons *stored* per second (rows in ``touchpoints`` counted just before and just
   after it). The collector answers 204 only once a beacon's transaction has committed
   (group commit: the requests in flight share one), so the two agree; they used to differ
   when beacons were answered on arrival and stored later, and only the smaller was
   sustainable.
5. The collector's own count of accepted beacons is read from ``/metrics``; it is then
   stopped with SIGTERM (a graceful shutdown stores what is still queued) and the rows in
   ``touchpoints`` are counted. Nothing accepted may be lost: stored rows must equal the
   beacons the collector accepted, and every 2xx wrk received must be among them (wrk does
   not count requests still in flight when its clock runs out, the collector does).

By default each store is loaded twice: unpaced (how much it can take), then paced at the
target rate (the latency a site at that load sees). Targets: 2,000 beacons/s answered *and*
stored unpaced (paced: 98% of the offered rate), and p99 < 50 ms at the target rate, on SQLite,
the embedded default; the unpaced p99 is that of a saturated collector, shown for information.
On PostgreSQL the same numbers are shown for information (ok = None): there the database
server competes for the same two cores, so they describe this machine more than the collector. No loss and no non-2xx response are required
on both stores.

Run: ``python -m bench collector [--seconds 20] [--connections 32] [--stores sqlite,postgresql]
[--warmup 3] [--rate N]``. Needs ``wrk`` (installed with apt-get when missing and run as
root) and, for PostgreSQL, the server binaries (Debian's ``postgresql`` package).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from bench.common import Measurement, closedloop_command, postgres_server
from sandbox.web import free_port

BENCHMARK = "collector"
SITE = "https://www.example.com"
DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
TARGET_RATE = 2000  # beacons/s, SQLite
TARGET_P99_MS = 50.0  # SQLite
WRK_THREADS = 2
STORES = ("sqlite", "postgresql")

# wrk script: one valid beacon per request (the body of tests/test_collector.py's beacon()),
# with a visitor id unique per thread, run (its start second) and request; optionally paced;
# and a done() that prints one JSON line.
WRK_SCRIPT = r"""
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  sent, ok, statuses = 0, 0, {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
  wrk.headers["Origin"] = "__SITE__"
  wrk.headers["User-Agent"] = "__UA__"
  body = '{"v":1,"type":"pageview","vid":"bench' .. id .. '-' .. os.time() .. '-%d","ts":%.0f,'
    .. '"url":"__SITE__/pricing?utm_source=google&utm_medium=cpc&gclid=Cj0abc",'
    .. '"referrer":"https://www.google.com/","ga_client_id":"GA1.1.123456789.1700000000",'
    .. '"lang":"en-GB","tz":"Europe/London","utm":{"utm_source":"google","utm_medium":"cpc"},'
    .. '"click_ids":{"gclid":"Cj0abc"}}'
end

function request()
  sent = sent + 1
  return wrk.format(nil, nil, nil, string.format(body, sent, os.time() * 1000))
end

function response(status, headers, response_body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    statuses[status] = (statuses[status] or 0) + 1
  end
end

-- --rate: each thread sends its share on a fixed schedule. Slots missed while all of its
-- connections waited are made up (sent at once) for up to a second, as browsers would not wait.
local interval = __INTERVAL_MS__
if interval > 0 then
  local ffi = require("ffi")
  ffi.cdef("struct cl_timespec { long sec; long nsec; }; int clock_gettime(int, struct cl_timespec *);")
  local clock, slot = ffi.new("struct cl_timespec"), nil
  function delay()
    ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
    local now = tonumber(clock.sec) * 1000 + tonumber(clock.nsec) / 1e6
    slot = math.max((slot or now) + interval, now - 1000)
    return math.max(0, math.floor(slot - now))
  end
end

function done(summary, latency, requests)
  local ok_total, other = 0, {}
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    for status, n in pairs(thread:get("statuses")) do
      other[#other + 1] = string.format('"%d":%d', status, n)
    end
  end
  local e = summary.errors
  io.write(string.format('CLOSEDLOOP-RESULT {"requests":%d,"duration_us":%d,"ok":%d,"non_2xx":{%s},'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, ok_total, table.concat(other, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def main(options: list[str]) -> list[Measurement]:
    parser = argparse.ArgumentParser(prog="python -m bench collector", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="measured load duration (default 20)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated: sqlite,postgresql")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured warm-up seconds (default 3)")
    parser.add_argument("--rate", type=int, default=None,
                        help="offered beacons/s, paced; 0: unpaced only (default: unpaced, then paced at "
                             f"{TARGET_RATE:,}/s)")
    args = parser.parse_args(options)
    stores = [name.strip() for name in args.stores.split(",") if name.strip()]
    if unknown := set(stores) - set(STORES):
        parser.error(f"unknown store(s) {', '.join(sorted(unknown))}; choose from {', '.join(STORES)}")
    wrk = _wrk()
    # Unpaced measures how much the collector can take (its latency is then a saturated one);
    # paced at the target rate measures the latency a site at that load sees.
    rates = [0, TARGET_RATE] if args.rate is None else [args.rate]
    measurements = []
    for store in stores:
        for rate in rates:
            with tempfile.TemporaryDirectory(prefix="closedloop-bench-collector-") as scratch:
                scratch = Path(scratch)
                with _database(store, scratch) as url:
                    paced = argparse.Namespace(**{**vars(args), "rate": rate})
                    measurements += _run(store, url, scratch, wrk, paced)
    return measurements


# -- one store --------------------------------------------------------------------------------


def _run(store_name: str, url: str, scratch: Path, wrk: str, args) -> list[Measurement]:
    """Serve ``url`` with a collector subprocess, load it, stop it; the store's measurements."""
    from state import Store

    store = Store(url)
    store.migrate()
    store.dispose()
    port = free_port()
    config = scratch / "closedloop.toml"
    # wrk sends from one address: the per-address limit would stop it at 20/s (a load balancer's
    # single address is the same case; see the README's reverse-proxy notes).
    config.write_text(f'[state]\nurl = "{url}"\n\n[collector]\nhost = "127.0.0.1"\nport = {port}\n'
                      f'allowed_origins = ["{SITE}"]\nip_rate_per_second = 0\n', encoding="utf-8")
    script = scratch / "beacon.lua"
    interval_ms = WRK_THREADS * 1000 / args.rate if args.rate else 0
    script.write_text(WRK_SCRIPT.replace("__SITE__", SITE).replace("__UA__", DESKTOP_UA)
                      .replace("__INTERVAL_MS__", repr(interval_ms)), encoding="utf-8")
    base = f"http://127.0.0.1:{port}"
    log_path = scratch / "collector.log"
    print(f"collector on {store_name}: {args.warmup}s warm-up, {args.seconds}s load "
          f"{f'at {args.rate:,}/s' if args.rate else 'unpaced'}, "
          f"{args.connections} connections, {WRK_THREADS} wrk threads", file=sys.stderr)
    with open(log_path, "wb") as log:
        server = subprocess.Popen([*closedloop_command(), "collector", "--config", str(config)], stdout=log,
                                  stderr=subprocess.STDOUT, cwd=scratch)
    try:
        _wait_healthy(base, server, log_path)
        runs = [_wrk_run(wrk, script, base, args.connections, args.warmup)] if args.warmup > 0 else []
        stored_before = _count_touchpoints(url)
        runs.append(_wrk_run(wrk, script, base, args.connections, args.seconds))
        stored_after = _count_touchpoints(url)
        outcomes = _collector_outcomes(base)
    finally:
        stopping = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            status = server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            status = server.wait()
        flush_seconds = time.monotonic() - stopping
    graceful = status in (0, -signal.SIGTERM)  # 0 now; older versions re-raised the SIGTERM (143)
    if not graceful:
        print(f"warning: collector exited with status {status}; its log:\n{_tail(log_path)}", file=sys.stderr)
    return _measurements(store_name, args, runs, stored_before, stored_after, _count_touchpoints(url),
                         outcomes, status, graceful, flush_seconds)


def _measurements(store_name: str, args, runs: list[dict], stored_before: int, stored_after: int,
                  stored: int, outcomes: dict[str, float], status: int, graceful: bool,
                  flush_seconds: float) -> list[Measurement]:
    run = runs[-1]  # the measured one; the warm-up only counts towards "nothing lost"
    seconds = run["duration_us"] / 1e6
    answered_rate = run["requests"] / seconds
    # Rows appear a batch (up to 500) at a time: +-500 rows over the run, +-25/s over 20 s.
    stored_rate = (stored_after - stored_before) / seconds
    failed = sum(sum(r["non_2xx"].values()) + sum(n for kind, n in r["errors"].items() if kind != "status")
                 for r in runs)
    if failed:
        print(f"warning: {failed} request(s) on {store_name} were not answered 2xx: "
              f"{[(r['non_2xx'], r['errors']) for r in runs]}", file=sys.stderr)
    answered_2xx = sum(r["ok"] for r in runs)
    accepted = int(outcomes.get("accepted", 0))
    held = store_name == "sqlite"  # held to the targets; PostgreSQL is informational
    case = f"{store_name} @{args.rate:,}/s" if args.rate else store_name
    # Unpaced, the collector must answer and store 2,000/s; paced, keep up with what is offered.
    floor, floor_text = (0.98 * args.rate, f">= 98% of {args.rate:,}/s") if args.rate else \
        (TARGET_RATE, f">= {TARGET_RATE:,}/s")

    def target(text: str) -> str:
        return text if held else "informational"

    p50, p99 = run["p50_us"] / 1000, run["p99_us"] / 1000
    load = {"seconds": round(seconds, 2), "requests": run["requests"], "connections": args.connections,
            "wrk_threads": WRK_THREADS, "offered_rate": args.rate or "unpaced", "warmup_seconds": args.warmup,
            "non_2xx_or_socket_errors": failed, "non_2xx_by_status": run["non_2xx"], "socket_errors": run["errors"]}
    return [
        Measurement(BENCHMARK, f"{case}: beacons/s answered", answered_rate, "/s", target(f"{floor_text}, all 2xx"),
                    (answered_rate >= floor and not failed) if held else None, load),
        # The writer must keep up: a queue that grows reaches its 100,000 limit and then the
        # collector answers 503, so the answered rate alone is not sustainable.
        Measurement(BENCHMARK, f"{case}: beacons/s stored", stored_rate, "/s", target(floor_text),
                    (stored_rate >= floor) if held else None,
                    {"stored_during_load": stored_after - stored_before,
                     "backlog_when_load_ended": accepted - stored_after,
                     "seconds_to_stop_and_flush": round(flush_seconds, 2)}),
        Measurement(BENCHMARK, f"{case}: latency p50", p50, "ms", "", None,
                    {"p90_ms": run["p90_us"] / 1000, "mean_ms": round(run["mean_us"] / 1000, 3)}),
        # The latency target is the one a site at the target load sees (paced); unpaced, every
        # connection waits for a commit, and p99 describes a saturated collector.
        Measurement(BENCHMARK, f"{case}: latency p99" + ("" if args.rate else " (saturated)"), p99, "ms",
                    target(f"< {TARGET_P99_MS:g} ms") if args.rate else "informational",
                    (p99 < TARGET_P99_MS) if held and args.rate else None, {"max_ms": run["max_us"] / 1000}),
        Measurement(BENCHMARK, f"{case}: accepted beacons lost", accepted - stored, "rows",
                    "0 (stored == accepted)", stored == accepted and answered_2xx <= accepted and graceful,
                    {"stored": stored, "accepted_by_collector": accepted, "answered_2xx_by_wrk": answered_2xx,
                     "collector_outcomes": outcomes, "collector_exit_status": status}),
    ]


# -- databases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _database(store: str, scratch: Path) -> Iterator[str]:
    """The state URL of a fresh, empty database for ``store``."""
    if store == "sqlite":
        yield f"sqlite:///{scratch / 'state' / 'closedloop.db'}"
        return
    import psycopg

    with postgres_server() as port:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as admin:
            admin.execute("CREATE DATABASE closedloop_bench")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/closedloop_bench"


def _count_touchpoints(url: str) -> int:
    from sqlmodel import func, select

    from state import Store
    from state.models import Touchpoint

    store = Store(url)
    try:
        with store.session(readonly=True) as session:
            return session.exec(select(func.count()).select_from(Touchpoint)).one()
    finally:
        store.dispose()


# -- the collector and wrk ---------------------------------------------------------------------


def _wait_healthy(base: str, server: subprocess.Popen, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the collector exited with status {server.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the collector did not answer /healthz within {timeout:.0f}s:\n{_tail(log_path)}")


def _collector_outcomes(base: str) -> dict[str, float]:
    """closedloop_collector_requests_total by outcome, from the collector's /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = r'^closedloop_collector_requests_total\{outcome="([^"]+)"\} (\S+)$'
    return {outcome: float(value) for outcome, value in re.findall(pattern, text, re.M)}


def _wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found; installing it with apt-get", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        if found := shutil.which("wrk"):
            return found
    raise SystemExit("wrk is needed for this benchmark (apt-get install wrk)")


def _wrk_run(wrk: str, script: Path, base: str, connections: int, seconds: int) -> dict:
    result = subprocess.run([wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                             "-s", str(script), f"{base}/collect"], capture_output=True, text=True)
    line = next((line for line in result.stdout.splitlines() if line.startswith("CLOSEDLOOP-RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed (status {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(line.split(" ", 1)[1])


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
