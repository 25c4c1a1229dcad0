"""Local stand-ins for the outside world: Salesforce, HubSpot and the GA4 Measurement Protocol.

The emulators speak the same wire formats as the real services so that the real client
libraries (simple-salesforce, hubspot-api-client, closedloop's GA4 sender) run against them
unmodified. Nothing here imports closedloop's own packages: a mistake shared between an
adapter and its emulator would pass every test.
"""
