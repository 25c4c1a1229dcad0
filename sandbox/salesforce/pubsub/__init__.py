"""The Salesforce Pub/Sub API and Change Data Capture, emulated (reference realtime-and-auth.md §2).

``proto`` (messages of the vendored ``pubsub_api.proto``), ``events`` (Avro schemas and payloads
of change events), ``bus`` (retention, replay ids, delivery lag and allocation), ``capture``
(selected entities; the org's writes as change events), ``server`` (the gRPC service).
:class:`sandbox.salesforce.SalesforceSandbox` wires them together.
"""
