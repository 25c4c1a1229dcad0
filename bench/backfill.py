"""HubSpot backfill wall time against the floor the rate limits force, and 429s received.

The HubSpot sandbox runs in its own process (as HubSpot runs on its own servers), set to the
100-requests-per-10-seconds tier with 50 ms added to every call; N contacts (default 100,000) whose visitors closedloop knows are enriched by the real
``closedloop backfill`` code path (``sync.jobs.backfill.Backfill``).

Floor: the time the limits alone force for the calls made — the 10-second limit for general
calls, ⌈calls/100⌉−1 full windows of 10 s, and HubSpot's 5-per-second search limit, (searches−1)/5
seconds — whichever is longer (both apply at once). Target: wall time ≤ 1.2 × floor with zero 429
responses: closedloop paces itself from the rate-limit headers instead of being told off.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import resource
import tempfile
import time
from pathlib import Path

import requests

from bench import scenario, serve
from bench.common import Measurement
from state import Store
from sync.config import load_config
from sync.jobs.backfill import Backfill
from sync.jobs.fields import missing_fields
from sync.ops.connections import Connections


def main(options: list[str]) -> list[Measurement]:
    parser = argparse.ArgumentParser(prog="python -m bench backfill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every HubSpot call")
    parser.add_argument("--profile", type=Path, metavar="FILE.html",
                        help="also write a wall-clock profile of the backfill (needs pyinstrument)")
    args = parser.parse_args(options)
    profiler = _profiler() if args.profile else contextlib.nullcontext()
    directory = Path(tempfile.mkdtemp(prefix="closedloop-bench-backfill-"))
    with serve.running("hubspot", "--tier", "100", "--latency", str(args.latency)) as (url, _):
        control = requests.Session()
        token = control.get(f"{url}/_sandbox/credentials", timeout=30).json()["access_token"]
        config_path = directory / "closedloop.toml"
        config_path.write_text(f'[state]\nurl = "sqlite:///{directory / "state.db"}"\n\n[hubspot]\nenabled = true\n'
                               f'host = "{url}"\nsearch_lag_seconds = 0\n')
        config = load_config(config_path, environ={"CLOSEDLOOP_HUBSPOT_TOKEN": token})
        store = Store(config.database_url)
        store.migrate()
        connections = Connections(config)
        adapter = connections.adapter("hubspot")
        adapter.ensure_fields(missing_fields("hubspot", connections.mapping("hubspot"), adapter.describe_fields))
        world = scenario.World("hubspot", directory, None, config, store, connections, None)
        scenario.add_journeys(world, args.contacts)
        ids: list[str] = []
        for start in range(0, args.contacts, 10_000):
            rows = [{"email": scenario.email("v", i)} for i in range(start, min(args.contacts, start + 10_000))]
            ids += control.post(f"{url}/_sandbox/contacts/seed", json={"rows": rows}, timeout=300).json()["ids"]
        control.post(f"{url}/_sandbox/requests/reset", timeout=30)
        job = Backfill(config, store, connections, "hubspot")
        started, cpu_before, machine_before = time.monotonic(), _process_cpu(), _machine_cpu()
        with profiler:
            result = job.run()
        seconds = time.monotonic() - started
        cpu_seconds = _process_cpu() - cpu_before
        busy, total = (after - before for after, before in zip(_machine_cpu(), machine_before))
        if result.written != args.contacts:
            raise RuntimeError(f"backfill wrote {result.written} of {args.contacts} contacts")
        for n in (0, len(ids) // 2, len(ids) - 1):
            stored = control.get(f"{url}/_sandbox/contacts/{ids[n]}", timeout=30).json()
            if not (stored.get("properties") or stored).get("cl_first_click_channel"):
                raise RuntimeError(f"contact {ids[n]} was not enriched")
        counts = control.get(f"{url}/_sandbox/requests/counts", timeout=60).json()
        store.dispose()
    if args.profile:
        args.profile.write_text(profiler.output_html())
        print(profiler.output_text(unicode=True, show_all=False), flush=True)
        print(f"profile written to {args.profile}", flush=True)
    searches = sum(n for endpoint, n in counts["by_endpoint"].items() if endpoint.endswith("/search"))
    general = counts["total"] - searches
    general_floor = max(0, math.ceil(general / 100) - 1) * 10.0
    search_floor = max(0, searches - 1) / 5.0
    floor = max(general_floor, search_floor)
    limited = counts["rate_limited"]
    detail = {"calls": counts["total"], "general_calls": general, "search_calls": searches,
              "general_floor_s": general_floor, "search_floor_s": search_floor,
              "latency_floor_s": round(counts["total"] * args.latency, 1), "contacts": args.contacts,
              "records_read": result.read, "by_endpoint": counts["by_endpoint"],
              # Where the time went: closedloop's own CPU (all its threads), and how busy the
              # machine's cores were (closedloop plus the sandbox in its process).
              "closedloop_cpu_s": round(cpu_seconds, 1), "closedloop_cpu_ms_per_record": round(
                  1000 * cpu_seconds / args.contacts, 3), "machine_cores_busy_percent": round(100 * busy / total, 1)}
    print(f"{args.contacts} contacts: {seconds:.1f}s, floor {floor:.1f}s (general {general} calls → "
          f"{general_floor:.0f}s, search {searches} → {search_floor:.0f}s), 429s: {limited}; closedloop used "
          f"{cpu_seconds:.1f}s of CPU, the cores were {detail['machine_cores_busy_percent']}% busy", flush=True)
    return [Measurement("backfill", f"hubspot {args.contacts:,} contacts", seconds, "s",
                        f"≤ 1.2 × floor ({floor:,.0f} s)", seconds <= 1.2 * floor, detail),
            Measurement("backfill", "429 responses received", limited, "", "0", limited == 0, detail)]


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_cpu() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores so far, from /proc/stat."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def _profiler():
    """A pyinstrument profiler of every thread's wall time (the prefetching reader's too)."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("--profile needs pyinstrument (pip install pyinstrument)") from None
    return Profiler(interval=0.001, async_mode="disabled")
