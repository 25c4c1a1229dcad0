"""Adapters: every client of a remote system, each a small declarative module.

=====================  ====================================================================
``salesforce``         Salesforce REST through simple-salesforce (``salesforce_auth``: OAuth)
``salesforce_pubsub``  Change Data Capture over the Pub/Sub API (gRPC, Avro; ``pubsub_api.proto``)
``hubspot``            HubSpot CRM through hubspot-api-client
``hubspot_webhooks``   HubSpot's webhook batches and their v3 signatures
``ga4``                the GA4 Measurement Protocol (validation and a careful sender)
``ga4_data``           the GA4 Data API (runReport) through google-analytics-data, to read GA4 back
``google_ads``         Google Ads conversions through the Data Manager API (google-ads-datamanager)
``meta``               Meta conversions through the Conversions API (facebook-business's event model)
``google_auth``        Google credentials (service account or refresh token) for the two Google APIs
``phones``             phone numbers in E.164, where both ad platforms' normalisation starts
``base``               the CRM interface and its record types
``http``               sessions with timeouts, trusted CAs and call counting
``retry``              one retry policy built from data
``lazy``               heavy client libraries loaded on first use
``ratelimit``          the sliding-window limiter
``errors``             closedloop's error tree, the whole project's vocabulary
=====================  ====================================================================

Adapters know nothing of the daemon: no module here imports ``sync``, ``state`` or
``mappings``. What the daemon wants to hear (API call counts for its metrics) is passed in as
a hook (:class:`adapters.http.CallCounter`); what adapters need (credentials, URLs, limits)
is passed in as plain values.
"""
