"""closedloop's daemon: the data's trip from a browser to the CRM, GA4 and the reports.

``sync/`` is grouped by the stage of that trip; each room says in its own docstring what it
owns and what it may import:

=================  ==========================================================================
``capture/``       the public collector (``/t.js``, ``/collect``), identity and stitching, forget
``journey/``       touchpoints → sessions, sources, channels, the variable catalogue, attribution
``jobs/``          the scheduled jobs (enrich, revenue, lifecycle, housekeeping), the GA4 outbox,
                   backfill and field creation: the only room that drives adapters
``reports/``       reports read from the store (tables, CSV/JSON, the HTML file) and ad spend
``ops/``           operating the daemon: health, metrics, logs, budgets, dead letters, connections
=================  ==========================================================================

Modules of ``sync`` itself: ``cli`` (the ``closedloop`` command), ``config`` (loading
``closedloop.toml``), ``daemon`` (scheduler, signals, collector thread) and ``demo``.

Arrows point one way. Every room may import ``state``, ``sync.config`` and the error tree
(``adapters.errors``); beyond that:

- ``capture`` imports no adapter and no job (it is the internet-facing endpoint);
- ``journey`` imports ``capture``'s identity and stitching, never an adapter or a job;
- ``reports`` reads the store through ``journey`` and ``capture``'s stitching, never an adapter;
- ``jobs`` and ``ops`` may use adapters and mappings;
- nothing here imports ``sandbox`` except ``sync.demo`` and the ``sandbox`` command in ``sync.cli``.
"""

__version__ = "0.1.0"
