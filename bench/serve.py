"""A sandbox CRM in its own process, for benchmarks that must not share a CPU (or the GIL) with
the daemon they measure:

    python -m bench.serve hubspot --tier 100 --latency 0.05
    python -m bench.serve salesforce --data-dir DIR

Prints its base URL on the first line of stdout (Salesforce: then its CA file on the second),
then serves until stdin closes or SIGTERM. Driven through its HTTP control API
(``/_sandbox/...``: ``sandbox/hubspot/admin.py``, ``sandbox/salesforce/admin.py``).
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def running(crm: str, *options: str) -> Iterator[tuple[str, str | None]]:
    """This module in a child process for the block: yields (base URL, CA file or None)."""
    server = subprocess.Popen([sys.executable, "-m", "bench.serve", crm, *options], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        yield url, server.stdout.readline().strip() if crm == "salesforce" else None
    finally:
        server.stdin.close()
        server.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("crm", choices=["hubspot", "salesforce"])
    parser.add_argument("--tier", type=int, default=100, help="HubSpot: requests per 10 seconds")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API call")
    parser.add_argument("--data-dir", default=None, help="Salesforce: where its certificate goes")
    args = parser.parse_args()
    if args.crm == "hubspot":
        from sandbox.hubspot import HubSpotSandbox
        sandbox = HubSpotSandbox(tier_max_per_10s=args.tier, latency_seconds=args.latency)
    else:
        from sandbox.salesforce import SalesforceSandbox
        sandbox = SalesforceSandbox(data_dir=Path(args.data_dir or tempfile.mkdtemp(prefix="closedloop-sf-")),
                                    daily_api_limit=10_000_000, log_bodies=False, latency_seconds=args.latency)
    sandbox.start("127.0.0.1", 0)
    print(sandbox.url, flush=True)
    if args.crm == "salesforce":
        print(sandbox.ca_path, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    sandbox.stop()


if __name__ == "__main__":
    main()
