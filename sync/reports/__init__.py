"""Reports: pipeline and revenue by source, read from the store alone.

Owns the report tables and exports (``build``: source and pipeline reports, CSV and JSON),
the self-contained HTML file (``html``), the ad spend import (``spend``) and the comparison of
the CRMs with what the destinations were sent and report (``reconcile``; what a destination
says is read by ``sync.jobs.readback`` and handed in as plain data).

Reports make no API call: they may import ``state``, ``sync.config``, ``sync.journey``,
``sync.capture``'s stitching (who belongs to whom) and the error tree ``adapters.errors``,
never another adapter, a job or ``ops``.
"""
