"""Prometheus metrics for ``GET /metrics``: one registry for the whole process."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

collector_requests = Counter(
    "closedloop_collector_requests",
    "Collector beacons and requests by outcome (accepted, rejected, bot, rate_limited, ...).",
    ["outcome"], registry=REGISTRY)
collector_queue_depth = Gauge(
    "closedloop_collector_queue_depth", "Beacons waiting to be committed (their requests wait too).",
    registry=REGISTRY)
collector_oldest_unwritten = Gauge(
    "closedloop_collector_oldest_unwritten_seconds", "Age of the oldest beacon not yet committed.",
    registry=REGISTRY)
collector_rows_refused = Counter(
    "closedloop_collector_rows_refused", "Beacons the database refused, set aside as dead letters.",
    registry=REGISTRY)
identify_claims_refused = Counter(
    "closedloop_identify_claims_refused", "Identify beacons refused: an email or phone claimed by too many "
    "new devices in the window.", registry=REGISTRY)
records_read = Counter(
    "closedloop_records_read", "CRM records read, per CRM and object.", ["crm", "object"], registry=REGISTRY)
records_written = Counter(
    "closedloop_records_written", "CRM records written, per CRM and object.", ["crm", "object"], registry=REGISTRY)
api_calls = Counter(
    "closedloop_api_calls", "API calls made, per remote system.", ["system"], registry=REGISTRY)
api_budget_remaining = Gauge(
    "closedloop_api_budget_remaining", "Remaining API allowance reported by the remote, per system and window.",
    ["system", "window"], registry=REGISTRY)
ga4_events = Counter(
    "closedloop_ga4_events", "GA4 events by outcome (sent, dead_lettered).", ["outcome"], registry=REGISTRY)
ad_conversions = Counter(
    "closedloop_ad_conversions", "Ad platform conversions by destination and outcome (sent, dead_lettered, "
    "skipped).", ["destination", "outcome"], registry=REGISTRY)
outbox_depth = Gauge(
    "closedloop_outbox_depth", "GA4 events waiting in the outbox.", registry=REGISTRY)
job_duration = Histogram(
    "closedloop_job_duration_seconds", "Job run durations.", ["job", "outcome"], registry=REGISTRY,
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
trigger_connected = Gauge(
    "closedloop_trigger_connected", "1 while a CRM trigger channel is connected (Pub/Sub) or listening (webhooks).",
    ["crm", "channel"], registry=REGISTRY)
trigger_events = Counter(
    "closedloop_trigger_events", "CRM change notifications by outcome (queued, own_write, ignored, undecodable, "
    "refused, keepalive).", ["crm", "channel", "outcome"], registry=REGISTRY)
trigger_last_event = Gauge(
    "closedloop_trigger_last_event_timestamp_seconds", "When the last change notification arrived (Unix time).",
    ["crm", "channel"], registry=REGISTRY)
trigger_lag = Gauge(
    "closedloop_trigger_lag_seconds", "Delivery lag of the last notification: arrival minus the CRM's commit time.",
    ["crm", "channel"], registry=REGISTRY)
triggered_enrich = Histogram(
    "closedloop_triggered_enrich_seconds", "From a CRM change to closedloop having processed it (triggered path).",
    ["crm", "job"], registry=REGISTRY, buckets=(0.5, 1, 2, 5, 10, 15, 30, 60, 300))
remote_up = Gauge(
    "closedloop_remote_up", "1 while closedloop talks to the remote, 0 while it is paused.", ["remote"],
    registry=REGISTRY)
remote_paused_seconds = Gauge(
    "closedloop_remote_paused_seconds", "How long the remote's current pause has lasted (0 when not paused).",
    ["remote"], registry=REGISTRY)
remote_paused_until = Gauge(
    "closedloop_remote_paused_until", "When a paused remote is tried again (Unix time; 0 when not paused).",
    ["remote"], registry=REGISTRY)
remote_failures = Counter(
    "closedloop_remote_failures", "Failures that paused a remote, by reason (budget, auth, down).",
    ["remote", "reason"], registry=REGISTRY)
