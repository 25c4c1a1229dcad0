"""Reports: pipeline and revenue by source, read from the store alone.

Owns the report tables and exports (``build``: source and pipeline reports, CSV and JSON),
the self-contained HTML file (``html``), the ad spend import (``spend``), ``closedloop
explain``'s view of one person (``explain``), terminal tables that fit the terminal
(``terminal``), the one helper that shows outside values as inert text in terminals and
spreadsheets (``safe_text``, which the CLI uses too) and the comparison of the CRMs with what
the destinations were sent and report (``reconcile``; what a destination says is read by
``sync.jobs.readback`` and handed in as plain data).

Reports make no API call: they may import ``state``, ``sync.config``, ``sync.journey``,
``sync.capture``'s stitching (who belongs to whom) and identity hashing (to find a person by
email), and the error tree ``adapters.errors``, never another adapter, a job, ``ops`` or
``mappings`` (the CLI names the mapped variables).
"""
