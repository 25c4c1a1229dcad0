"""Reading GA4 back through the GA4 Data API (``runReport``), for ``closedloop reconcile``.

Client: ``google-analytics-data`` (Google's generated client, ``BetaAnalyticsDataClient``), REST
transport, so the endpoint is a plain URL the sandbox can stand in for; credentials from
:mod:`adapters.google_auth` with the ``analytics.readonly`` scope. Two questions only: purchase
revenue by first-user default channel group (what GA4 credits each channel with) and by
transaction id (which of closedloop's purchases GA4 shows). Calls go through the shared retry
policy with the library's own retry off, like every other adapter.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import google.auth.exceptions
import requests
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import DateRange, Dimension, Metric, RunReportRequest
from google.api_core import exceptions as google_exceptions
from google.api_core.client_options import ClientOptions

from adapters.errors import AuthError, ConfigError, RateLimited, RemoteError, TransientError
from adapters.google_auth import ANALYTICS_READONLY_SCOPE, GoogleCredentials, configure_google_sessions, token_error
from adapters.http import CallCounter
from adapters.retry import RetryPolicy

SYSTEM = "ga4_data"
PAGE = 10_000


@dataclass(frozen=True)
class RevenueRow:
    keys: tuple[str, ...]   # the dimensions' values, e.g. (transaction id, first-user channel group)
    revenue: Decimal
    purchases: int


class Ga4DataReader:
    """``runReport`` on one GA4 property."""

    def __init__(self, property_id: str, credentials: GoogleCredentials, *,
                 endpoint: str = "https://analyticsdata.googleapis.com", timeout: float = 30.0,
                 ca_bundle: str | None = None, counter: CallCounter | None = None,
                 policy: RetryPolicy | None = None) -> None:
        self.property_id = property_id
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self.policy = policy or RetryPolicy(attempts=3, initial_wait=1.0, max_wait=10.0, give_up_after=60.0)
        self._client = BetaAnalyticsDataClient(credentials=credentials.build([ANALYTICS_READONLY_SCOPE]),
                                               transport="rest",
                                               client_options=ClientOptions(api_endpoint=self.endpoint))
        configure_google_sessions(self._client.transport._session, timeout=timeout, ca_bundle=ca_bundle,
                                  counter=counter, system=SYSTEM)

    def revenue_by(self, dimensions: list[str], start: date, end: date) -> list[RevenueRow]:
        """Purchase revenue and purchases per combination of ``dimensions`` (``transactionId``,
        ``firstUserDefaultChannelGroup``...) for the days ``start``..``end`` (the property's time zone)."""
        rows: list[RevenueRow] = []
        offset = 0
        while True:
            request = RunReportRequest(property=f"properties/{self.property_id}",
                                       date_ranges=[DateRange(start_date=start.isoformat(), end_date=end.isoformat())],
                                       dimensions=[Dimension(name=name) for name in dimensions],
                                       metrics=[Metric(name="purchaseRevenue"), Metric(name="ecommercePurchases")],
                                       limit=PAGE, offset=offset)
            response = self._call(lambda: self._client.run_report(request=request, retry=None, timeout=self.timeout))
            for row in response.rows:
                rows.append(RevenueRow(tuple(value.value for value in row.dimension_values),
                                       Decimal(row.metric_values[0].value or "0"),
                                       int(Decimal(row.metric_values[1].value or "0"))))
            offset += len(response.rows)
            if not response.rows or offset >= response.row_count:
                return rows

    def _call(self, function):
        def attempt():
            try:
                return function()
            except google_exceptions.Unauthenticated:
                raise AuthError("GA4 Data API: the access token was refused (401)") from None
            except google_exceptions.PermissionDenied:
                raise AuthError(f"GA4 Data API: the identity of [google_auth] cannot read property "
                                f"{self.property_id} (403); give it Viewer on the property") from None
            except (google_exceptions.TooManyRequests, google_exceptions.ResourceExhausted):
                raise RateLimited("GA4 Data API: quota exhausted (429)") from None
            except (google_exceptions.ServerError, google_exceptions.DeadlineExceeded) as exc:
                raise TransientError(f"GA4 Data API answered {exc.code}") from None
            except google_exceptions.NotFound:
                raise ConfigError(f"GA4 Data API: property {self.property_id} not found; check [ga4.data_api] "
                                  "property_id (the numeric id, not the G- measurement id)") from None
            except google_exceptions.GoogleAPICallError as exc:
                raise RemoteError(f"GA4 Data API refused the report ({exc.code}): {(exc.message or '')[:300]}") from None
            except google.auth.exceptions.GoogleAuthError as exc:
                raise token_error(exc, "GA4 Data API") from None
            except requests.RequestException as exc:
                raise TransientError(f"GA4 Data API at {self.endpoint}: {type(exc).__name__}") from None
        return self.policy.call("GA4 Data API runReport", attempt)
