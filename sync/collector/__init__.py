"""The collector: the ASGI app serving the tracker (``/t.js``), ``/collect``, ``/healthz``."""
