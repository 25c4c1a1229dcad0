"""``python -m bench NAME [options]`` runs one benchmark; ``python -m bench all`` runs each with
its defaults. ``python -m bench NAME --help`` lists a benchmark's options.

=============  =====================================================================
api_calls      API calls per enriched record vs the floor and a naive baseline
backfill       HubSpot backfill wall time vs the rate-limit floor, and 429s received
ga4            GA4 Measurement Protocol requests per event
collector      beacons per second and latency (p50/p99), SQLite and PostgreSQL
memory         peak RSS of the daemon while it enriches many leads
latency        time from a lead's creation to its fields being written
=============  =====================================================================

``python -m bench results`` prints the saved results (bench/results/*.json) as the Markdown
table the README quotes.
"""
from __future__ import annotations

import importlib
import sys

from bench.common import markdown, report, save

BENCHMARKS = ["api_calls", "backfill", "ga4", "collector", "memory", "latency"]


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if argv[0] == "results":
        print(markdown())
        return 0
    names = BENCHMARKS if argv[0] == "all" else [argv[0]]
    if names[0] not in BENCHMARKS:
        print(f"unknown benchmark {argv[0]!r}; one of: {', '.join(BENCHMARKS)}, all", file=sys.stderr)
        return 2
    options = [] if argv[0] == "all" else argv[1:]
    everything = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        measurements = module.main(options)
        path = save(name, measurements)
        report(measurements)
        print(f"saved {path}")
        everything += measurements
    missed = [m for m in everything if m.ok is False]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
