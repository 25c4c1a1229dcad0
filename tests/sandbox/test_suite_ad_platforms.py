"""The suite's Google and Meta emulators, used the way a closedloop config would use them:
secrets from ``SandboxSuite.environment()``, URLs from the emulators, the real clients."""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
from google.ads import datamanager_v1 as dm
from google.analytics.data_v1beta import BetaAnalyticsDataClient, DateRange, Dimension, Metric, RunReportRequest
from google.oauth2 import service_account

from sandbox.clock import Clock
from sandbox.suite import SERVERS, SandboxSuite

NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    suite = SandboxSuite.start(tmp_path_factory.mktemp("suite"), clock=Clock(frozen_at=NOW),
                               ga4={"processing_delay_seconds": 60})
    yield suite
    suite.stop()


def test_every_server_listens_on_its_own_port(suite):
    urls = {name: getattr(suite, name).url for name in SERVERS}
    assert len(set(urls.values())) == len(SERVERS)
    assert urls["meta"].startswith("https://localhost:") and urls["google_ads"].startswith("http://127.0.0.1:")


def test_one_service_account_writes_google_ads_conversions_and_reads_ga4(suite):
    key_file = suite.environment()["CLOSEDLOOP_GOOGLE_SERVICE_ACCOUNT_FILE"]
    assert os.path.exists(key_file) and key_file == suite.google_ads.credentials["service_account_file"]
    ads_settings = suite.google_ads.credentials
    ads = dm.IngestionServiceClient(
        credentials=service_account.Credentials.from_service_account_file(key_file, scopes=[ads_settings["scope"]]),
        transport="rest", client_options={"api_endpoint": ads_settings["api_endpoint"]})
    suite.google_ads.record_click(gclid="Cj0KCQiAsuiteClick01", at=NOW - timedelta(days=1))
    response = ads.ingest_events(request=dm.IngestEventsRequest(
        destinations=[dm.Destination(operating_account=dm.ProductAccount(
            account_type="GOOGLE_ADS", account_id=ads_settings["operating_account_id"]),
            product_destination_id=ads_settings["conversion_actions"]["won"])],
        consent=dm.Consent(ad_user_data="CONSENT_GRANTED", ad_personalization="CONSENT_GRANTED"),
        events=[dm.Event(transaction_id="suite:1", event_timestamp=NOW - timedelta(hours=1), event_source="OTHER",
                         ad_identifiers=dm.AdIdentifiers(gclid="Cj0KCQiAsuiteClick01"), conversion_value=10.0,
                         currency="USD")]), retry=None)
    assert response.request_id and len(suite.google_ads.conversions()) == 1

    ga4_settings = suite.ga4.data_api_settings
    analytics = BetaAnalyticsDataClient(
        credentials=service_account.Credentials.from_service_account_file(key_file, scopes=[ga4_settings["scope"]]),
        transport="rest", client_options={"api_endpoint": ga4_settings["api_endpoint"]})
    report = analytics.run_report(request=RunReportRequest(
        property=f"properties/{ga4_settings['property_id']}", dimensions=[Dimension(name="date")],
        metrics=[Metric(name="eventCount")], date_ranges=[DateRange(start_date="today", end_date="today")]))
    assert report.kind == "analyticsData#runReport"


def test_the_meta_token_from_the_environment_posts_to_the_dataset(suite):
    settings = suite.meta.credentials
    response = requests.post(f"{settings['graph_url']}/{settings['api_version']}/{settings['dataset_id']}/events",
                             verify=settings["ca_path"], timeout=5, json={
                                 "access_token": suite.environment()["CLOSEDLOOP_META_ACCESS_TOKEN"],
                                 "data": [{"event_name": "Lead", "event_time": int(time.time()) - 60,
                                           "action_source": "system_generated", "event_id": "suite:1",
                                           "user_data": {"external_id": "crm-contact-1"}}]})
    assert response.status_code == 200 and response.json()["events_received"] == 1
