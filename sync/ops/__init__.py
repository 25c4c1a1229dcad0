"""Ops: what an operator needs to run the daemon for months.

Owns the admin endpoints ``/healthz`` and ``/metrics`` (``admin``, other parts register their
health checks there), job health (``health``), the Prometheus registry (``metrics``), logging
with secret redaction (``logs``), garbage-collector settings for long-running processes
(``runtime``), remembered API allowances (``budgets``), the per-remote pause
book that isolates one remote's trouble from the others (``remotes``), dead letters
(``dead_letters``) and building the adapters, mappings, GA4 sender and ad platform senders a
config describes (``connections``).

It may import ``adapters``, ``mappings``, ``state`` and ``sync.config``; ``connections`` also
reads ``sync.journey``'s variable catalogue. ``capture`` and ``jobs`` import from here, so
nothing here imports them.
"""
