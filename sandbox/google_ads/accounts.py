"""The Google Ads side the Data Manager API writes into: accounts, conversion actions, ad clicks.

Facts (shared/reference/ad-platform-conversions.md):
- §2.2/§2.3: the credential's Google account (a service account's e-mail included) must be a
  user of the login account, or of the operating account when no login account is given; the
  operating account must own the conversion action ("conversion customer"), a manager's id is
  not accepted in its place; ``productDestinationId`` is the conversion action's id, of type
  ``UPLOAD_CLICKS``.
- §2.8: a conversion counts only within the action's click-through window (at most 90 days)
  after its click; actions younger than ~6 hours refuse uploads
  (``CONVERSION_ACTION_TOO_RECENTLY_CREATED``); clicks younger than 6 hours cannot take a
  conversion yet (``TOO_RECENT_CLICK``).
- §2.9/§2.10: consent defaults and the enhanced-conversions-for-leads prerequisites are account
  settings.

Clicks are what Google Ads knows because it served the ad: a test or the demo registers them
(:meth:`Accounts.record_click`) for the gclid/gbraid/wbraid its visitor landed with.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

ACTION_TYPES = ("UPLOAD_CLICKS", "WEBPAGE", "UPLOAD_CALLS", "STORE_SALES", "GOOGLE_ANALYTICS_4_PURCHASE")
MAX_CLICK_THROUGH_DAYS = 90
_CUSTOMER_ID = re.compile(r"\d{10}")


@dataclass
class ConversionAction:
    id: str
    name: str
    type: str = "UPLOAD_CLICKS"
    status: str = "ENABLED"              # or "REMOVED"
    created_at: datetime | None = None
    click_through_days: int = MAX_CLICK_THROUGH_DAYS

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.type, "status": self.status,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "click_through_days": self.click_through_days}


@dataclass
class Account:
    """One Google Ads account (a customer id) and its settings."""

    customer_id: str
    name: str = ""
    currency: str = "USD"
    users: set[str] = field(default_factory=set)              # e-mails with access
    manager: bool = False
    clients: set[str] = field(default_factory=set)            # customer ids a manager manages
    conversion_actions: dict[str, ConversionAction] = field(default_factory=dict)
    custom_variables: dict[str, bool] = field(default_factory=dict)  # name → enabled
    consent_required: bool = True          # an EEA advertiser: rows without ad_user_data fail
    default_ad_user_data: str = "CONSENT_STATUS_UNSPECIFIED"   # the account's consent default
    third_party_consent: bool = True       # "Advertiser did not give 3P consent" when False
    ecl_enabled: bool = True
    ecl_terms_signed: bool = True
    ecl_policy_allows: bool = True

    def as_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "name": self.name, "currency": self.currency,
                "users": sorted(self.users), "manager": self.manager, "clients": sorted(self.clients),
                "conversion_actions": [action.as_json() for action in self.conversion_actions.values()],
                "custom_variables": dict(self.custom_variables), "consent_required": self.consent_required,
                "default_ad_user_data": self.default_ad_user_data, "third_party_consent": self.third_party_consent,
                "ecl_enabled": self.ecl_enabled, "ecl_terms_signed": self.ecl_terms_signed,
                "ecl_policy_allows": self.ecl_policy_allows}


@dataclass(frozen=True)
class Click:
    """An ad click Google Ads served: its identifier, account and time."""

    kind: str          # "gclid", "gbraid" or "wbraid"
    value: str
    customer_id: str
    at: datetime
    campaign: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "customer_id": self.customer_id, "at": self.at.isoformat(),
                "campaign": self.campaign}


class Accounts:
    """Every account the emulated Google Ads holds, and every click it served."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.clicks: dict[tuple[str, str], Click] = {}

    def add_account(self, customer_id: str, **settings: Any) -> Account:
        if not _CUSTOMER_ID.fullmatch(customer_id):
            raise ValueError(f"a customer id is ten digits without hyphens, not {customer_id!r}")
        unknown = set(settings) - set(Account.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown account settings {sorted(unknown)}")
        account = self.accounts.get(customer_id)
        if account is None:
            account = self.accounts[customer_id] = Account(customer_id)
        for key, value in settings.items():
            setattr(account, key, set(value) if key in ("users", "clients") else value)
        return account

    def add_conversion_action(self, customer_id: str, action_id: str, name: str, *, type: str = "UPLOAD_CLICKS",  # noqa: A002
                              created_at: datetime, status: str = "ENABLED",
                              click_through_days: int = MAX_CLICK_THROUGH_DAYS) -> ConversionAction:
        if type not in ACTION_TYPES:
            raise ValueError(f"conversion action type is one of {ACTION_TYPES}")
        if not str(action_id).isdigit():
            raise ValueError("a conversion action id is digits")
        if not 1 <= click_through_days <= MAX_CLICK_THROUGH_DAYS:
            raise ValueError(f"click_through_days is 1..{MAX_CLICK_THROUGH_DAYS}")
        account = self.require(customer_id)
        action = ConversionAction(str(action_id), name, type, status, created_at, click_through_days)
        account.conversion_actions[action.id] = action
        return action

    def require(self, customer_id: str) -> Account:
        account = self.accounts.get(customer_id)
        if account is None:
            raise ValueError(f"no Google Ads account {customer_id}")
        return account

    def record_click(self, customer_id: str, *, at: datetime, gclid: str | None = None, gbraid: str | None = None,
                     wbraid: str | None = None, campaign: str = "") -> Click:
        """Register the ad click a visitor landed with (exactly one identifier)."""
        given = [(kind, value) for kind, value in (("gclid", gclid), ("gbraid", gbraid), ("wbraid", wbraid)) if value]
        if len(given) != 1:
            raise ValueError("give exactly one of gclid, gbraid, wbraid")
        self.require(customer_id)
        kind, value = given[0]
        click = Click(kind, value, customer_id, at, campaign)
        self.clicks[(kind, value)] = click
        return click

    def click(self, kind: str, value: str) -> Click | None:
        return self.clicks.get((kind, value))

    def can_access(self, email: str, customer_id: str, login_id: str | None) -> bool:
        """Whether ``email`` may write to ``customer_id`` (through ``login_id`` when given)."""
        operating = self.accounts.get(customer_id)
        if operating is None:
            return False
        if login_id is None or login_id == customer_id:
            return email in operating.users
        login = self.accounts.get(login_id)
        return login is not None and email in login.users and login.manager and customer_id in login.clients


def decodable(value: str) -> bool:
    """Whether a click identifier could be one Google issued: unpadded base64url of a few bytes.

    Real gclid/gbraid/wbraid values are base64url-encoded protobufs (e.g. ``Cj0KCQiA...``); the
    emulator cannot decode their content, so it checks the encoding only.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", value) or len(value) % 4 == 1:
        return False
    try:
        return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) >= 8
    except (binascii.Error, ValueError):
        return False


def window_closed(click: Click, event_at: datetime, days: int) -> bool:
    return event_at - click.at > timedelta(days=days)
