"""Local stand-ins for the outside world: Salesforce, HubSpot, GA4 (Measurement Protocol and the
Data API), Google's OAuth token endpoint, the Google Ads Data Manager API and Meta's Conversions API.

The emulators speak the same wire formats as the real services so that the real client
libraries (simple-salesforce, hubspot-api-client, google-ads-datamanager, google-analytics-data,
facebook-business, closedloop's GA4 sender) run against them unmodified. Nothing here imports
closedloop's own packages: a mistake shared between an adapter and its emulator would pass
every test. ``suite.py`` starts them all on one clock.
"""
