"""Every benchmark, in the order ``python -m bench all`` runs them and the README lists them.

One place that both the command (``bench/__main__.py``) and the results table
(``bench/common.py``) read, so neither imports the other.
"""
from __future__ import annotations

BENCHMARKS: dict[str, str] = {
    "api_calls": "API calls per enriched record vs the floor and a naive baseline",
    "backfill": "HubSpot backfill wall time vs the rate-limit floor, and 429s received",
    "ga4": "GA4 Measurement Protocol requests per event",
    "ads": "Google Ads (Data Manager) and Meta (Conversions API) requests per 1,000 conversions vs the batch floor",
    "collector": "beacons per second and latency (p50/p99), SQLite and PostgreSQL",
    "memory": "peak RSS of the daemon while it enriches many leads",
    "latency": "time from a lead's creation to its fields being written, polling and triggers; API calls per lead",
    "sizing": "what several instances need from PostgreSQL: connections, storage per beacon and per lead",
}
