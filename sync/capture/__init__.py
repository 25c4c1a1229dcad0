"""Capture: the public collector and the identity it builds.

Owns the ASGI app (``app``: ``GET /t.js``, ``POST /collect``, ``/healthz``, ``/metrics``), the
tracker (``tracker.js``), beacon parsing (``beacon``), the batched writer (``writer``), the
uvicorn runner (``server``), identifier hashing (``identity``), stitching visitors into people
(``stitching``) and erasing a person (``privacy``).

This is the one part of closedloop that anyone on the internet can reach, so it stays small:
it may import ``state``, ``sync.config``, ``sync.ops`` (metrics, health) and the error tree
``adapters.errors``, and nothing else of ``adapters`` and no job.
"""
