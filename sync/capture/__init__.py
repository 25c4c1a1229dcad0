"""Capture: the public collector and the identity it builds.

Owns the ASGI app (``app``: ``GET /t.js``, ``POST /collect``, and the admin routes of
``sync.ops.admin`` unless they have their own listener), the tracker (``tracker.js``), making
outside text valid (``text``), bounded beacon parsing (``beacon``), per-client limits
(``limits``), the group-committing writer (``writer``), the uvicorn runner (``server``),
identifier hashing (``identity``), stitching visitors into people with their trust
(``stitching``) and erasing a person (``privacy``).

This is the one part of closedloop that anyone on the internet can reach, so it stays small:
it may import ``state``, ``sync.config``, ``sync.ops`` (metrics, health) and the error tree
``adapters.errors``, and nothing else of ``adapters`` and no job.
"""
