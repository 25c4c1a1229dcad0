"""Journey: from a person's stored touchpoints to sessions, sources, channels and variables.

Owns the computation (``compute``: sessions, touches, every catalogue variable, ``explain``),
traffic sources (``traffic``), GA4's default channel group (``channels``, with the source
categories in ``data/``), the variable catalogue (``variables``), the glue from stored rows to
hits (``hits``) and the attribution models (``attribution``).

Pure computation on data it is handed: it may import ``state`` (row types), ``sync.config``
and ``sync.capture``'s beacon keys, never an adapter, a job or the reports.
"""
