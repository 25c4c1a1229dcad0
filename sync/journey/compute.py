"""From a person's tracker hits to sessions, touches and every variable of the catalogue.

One computation serves the enrich job, ``closedloop explain`` and the reports: they build
:class:`Hit` objects from stored rows and call :func:`sessionize`, :func:`compute_variables` or
:func:`explain`. Pure Python: no database, no configuration files, no clock.

Definitions (each variable's own one-line definition is in :data:`sync.journey.variables.VARIABLES`):

- **Session.** A run of one device's (``visitor_id``'s) hits with no gap longer than
  ``session_timeout``; a page view that arrives with a different campaign key (``utm_source``,
  ``utm_medium``, ``utm_campaign`` or an ad click id, :func:`sync.journey.traffic.campaign_key`) starts a
  new one. That is the rule ``tracker.js`` applies, including its memory of the last campaign
  across a timeout. The hits of several devices of one person merge into one journey, ordered by
  session start; sessions of different devices may interleave. A session's source comes from its
  landing hit (its first page view, else its first hit) by :func:`sync.journey.traffic.derive`, its
  channel from :func:`sync.journey.channels.classify`.
- **Touch.** A session that is not Direct: it arrived with campaign parameters, an ad click id or
  an external referrer.
- **Conversion.** The caller says when the person converted (``conversion_at``, usually the CRM
  record's creation plus a little slack for late beacons). Only hits at or before it count. A
  conversion hit (a ``conversion`` beacon, or an ``identify`` beacon that names a
  ``conversion_type``: a form) at most ``session_timeout`` before ``conversion_at`` is *this*
  conversion: the conversion moment becomes its time, the session containing it is the
  **conversion session**, and hits after it (a thank-you page, another device) are left out.
  Without one (a phone call, a lead imported later), the conversion moment is ``conversion_at``
  and the conversion session is the last session that started at or before it; older conversion
  hits still count in ``conversion_count``.
- **First click** is the first touch; **last click** the last touch at or before the conversion
  moment. With no touch at all both fall back to the first and last session, which are Direct.
- **Paths** (``channel_path``, ``source_path``, ``campaign_path``, ``pages_viewed``,
  ``channels_touched``) hold at most ``path_max_length`` characters: entries are dropped from
  the middle and ``truncation_marker`` stands in their place, so the first and last entries
  survive whole whenever the two of them fit (:func:`join_capped`).
- **Values** are strings, ints, floats (``days_to_convert`` to one decimal,
  ``avg_pageviews_per_visit`` to two), ISO 8601 UTC strings for ``*_at``
  (``2026-11-24T10:00:00Z``), or None when unknown. Counts are 0 and ``consent`` is ``unknown``
  when there is nothing to count. Bad input (unparsable URLs, odd user agents, naive datetimes,
  which are taken as UTC) never raises.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Collection, Iterable, Mapping
from urllib.parse import urlsplit

from ua_parser import parse as parse_user_agent

from sync.journey.channels import ChannelMatch
from sync.journey.traffic import TrafficSource, campaign_key, derive, landing_evidence
from sync.journey.variables import VARIABLES

CLICK_ID_VARIABLES = ("gclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid", "li_fat_id")
CONVERSION_TYPES = ("form", "call", "chat", "other")
CHANNEL_LIST_SEPARATOR = ", "  # channels_touched is a set, not a path
# What only the person's trusted devices may decide: the first click, and which browser converted.
TRUSTED_ONLY = tuple(name for name in VARIABLES if name.startswith("first_click_")) + (
    "visitor_id", "ga_client_id", "ga_session_id")


@dataclass(frozen=True)
class Hit:
    """One stored tracker event, as the journey computation sees it."""

    visitor_id: str
    occurred_at: datetime              # aware UTC (naive values are taken as UTC)
    kind: str                          # "pageview" | "identify" | "conversion"
    url: str                           # full page URL
    referrer: str = ""
    utm: Mapping[str, str] = field(default_factory=dict)
    click_ids: Mapping[str, str] = field(default_factory=dict)
    ga_client_id: str = ""
    ga_session_id: str = ""
    language: str = ""
    timezone: str = ""
    user_agent: str = ""
    conversion_type: str = ""          # form | call | chat | other, on conversion hits
    consent: str = ""                  # "granted" | "denied" | "" (unknown)
    ad_user_data: str = ""             # Google Consent Mode: "granted" | "denied" | "" (not set)
    ad_personalization: str = ""

    @property
    def is_pageview(self) -> bool:
        return self.kind == "pageview"

    @property
    def is_conversion(self) -> bool:
        """A conversion beacon, or an identify beacon sent by a form (it names its conversion type)."""
        return self.kind == "conversion" or (self.kind == "identify" and bool(self.conversion_type))


@dataclass(frozen=True)
class JourneySettings:
    """The site-specific knobs of the computation (from the ``[collector]``/``[journey]`` config)."""

    site_hosts: tuple[str, ...] = ()           # the site's own hosts; subdomains count as internal
    session_timeout: timedelta = timedelta(minutes=30)
    path_max_length: int = 255                 # characters, for every *_path / pages_viewed / channels_touched
    path_separator: str = " > "
    truncation_marker: str = "…"
    # (glob on the landing path like "/blog/*", group name), first match wins; unmatched paths
    # are grouped by their first segment ("/pricing/team" → "Pricing", "/" → "Home").
    landing_page_groups: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Session:
    """Consecutive hits of one device, with where they came from."""

    visitor_id: str
    hits: tuple[Hit, ...]
    traffic: TrafficSource

    @property
    def start(self) -> datetime:
        return self.hits[0].occurred_at

    @property
    def end(self) -> datetime:
        return self.hits[-1].occurred_at

    @property
    def landing(self) -> Hit:
        """The first page view, else the first hit (a session of beacons only)."""
        return _landing(self.hits)

    @property
    def pageviews(self) -> int:
        return sum(1 for hit in self.hits if hit.is_pageview)

    @property
    def match(self) -> ChannelMatch:
        return self.traffic.match

    @property
    def channel(self) -> str:
        return self.traffic.match.channel

    @property
    def is_direct(self) -> bool:
        return self.traffic.is_direct


@dataclass(frozen=True)
class SessionExplanation:
    """Why a session got its source and its channel (one line of ``closedloop explain``)."""

    visitor_id: str
    start: datetime
    end: datetime
    pageviews: int
    landing_page: str | None
    source: str
    medium: str
    campaign: str
    source_reason: str
    channel: str
    rule: str
    rule_reason: str
    is_touch: bool


def sessionize(hits: Iterable[Hit], settings: JourneySettings) -> list[Session]:
    """Every device's sessions (see the module docstring), merged and ordered by start."""
    by_visitor: dict[str, list[Hit]] = {}
    for hit in _as_utc(hits):
        by_visitor.setdefault(hit.visitor_id, []).append(hit)
    sessions: list[Session] = []
    for visitor_id, visitor_hits in by_visitor.items():
        visitor_hits.sort(key=_time)
        current: list[Hit] = []
        last_campaign = ""  # survives a timeout, as in tracker.js
        for hit in visitor_hits:
            key = campaign_key(hit.url, hit.utm, hit.click_ids) if hit.is_pageview else ""
            timed_out = bool(current) and hit.occurred_at - current[-1].occurred_at > settings.session_timeout
            if current and (timed_out or (key and key != last_campaign)):
                sessions.append(_session(visitor_id, current, settings))
                current = []
            current.append(hit)
            last_campaign = key or last_campaign
        if current:
            sessions.append(_session(visitor_id, current, settings))
    sessions.sort(key=lambda session: (session.start, session.visitor_id))
    return sessions


def explain(hits: Iterable[Hit], settings: JourneySettings) -> list[SessionExplanation]:
    """Every session with the evidence behind its source and the rule behind its channel."""
    return [SessionExplanation(
        visitor_id=session.visitor_id, start=session.start, end=session.end, pageviews=session.pageviews,
        landing_page=page_path(session.landing.url), source=session.traffic.source, medium=session.traffic.medium,
        campaign=session.traffic.campaign, source_reason=session.traffic.reason, channel=session.channel,
        rule=session.match.rule, rule_reason=session.match.reason, is_touch=not session.is_direct)
        for session in sessionize(hits, settings)]


def compute_variables(hits: Iterable[Hit], conversion_at: datetime, settings: JourneySettings, *,
                      conversion_type: str = "", trusted_visitors: Collection[str] | None = None) -> dict[str, Any]:
    """Every catalogue variable for this person's journey up to the conversion (module docstring).

    ``trusted_visitors``: the devices the person is known to be (see the identity trust model in
    :mod:`sync.capture.stitching`). Devices outside it only claimed to be the person: their hits
    count in the journey, but the first click and the converting browser's identity
    (:data:`TRUSTED_ONLY`) come from the trusted devices' hits alone."""
    hits = list(hits)
    values = _variables(hits, conversion_at, settings, conversion_type)
    if trusted_visitors is not None and any(hit.visitor_id not in trusted_visitors for hit in hits):
        trusted = _variables([hit for hit in hits if hit.visitor_id in trusted_visitors], conversion_at, settings,
                             conversion_type)
        values.update({name: trusted[name] for name in TRUSTED_ONLY})
    return values


def _variables(hits: list[Hit], conversion_at: datetime, settings: JourneySettings,
               conversion_type: str) -> dict[str, Any]:
    cutoff = _utc(conversion_at)
    kept = sorted((hit for hit in _as_utc(hits) if hit.occurred_at <= cutoff), key=_time)
    values: dict[str, Any] = dict.fromkeys(VARIABLES)
    values.update(visit_count=0, pageview_count=0, touchpoint_count=0, conversion_count=0, distinct_channel_count=0,
                  consent="unknown", conversion_at=_iso(cutoff), conversion_type=_conversion_type(conversion_type))
    if not kept:
        return values
    conversion_hit = next((hit for hit in reversed(kept) if hit.is_conversion
                           and cutoff - hit.occurred_at <= settings.session_timeout), None)
    moment = conversion_hit.occurred_at if conversion_hit else cutoff
    kept = [hit for hit in kept if hit.occurred_at <= moment]
    sessions = sessionize(kept, settings)
    converting = next((s for s in sessions if any(hit is conversion_hit for hit in s.hits)), sessions[-1])

    touches = [session for session in sessions if not session.is_direct]
    first = touches[0] if touches else sessions[0]
    last = touches[-1] if touches else sessions[-1]
    values.update(_click_values("first_click", first, settings))
    values.update(_click_values("last_click", last, settings))
    values.update(_conversion_values(converting, conversion_hit, kept, moment, conversion_type))
    values.update(_journey_values(sessions, touches, kept, moment, settings))
    values.update(_context_values(converting.visitor_id, kept, first))
    return values


def _click_values(prefix: str, session: Session, settings: JourneySettings) -> dict[str, Any]:
    traffic, landing = session.traffic, session.landing
    path = page_path(landing.url)
    return {
        f"{prefix}_channel": session.channel, f"{prefix}_source": traffic.source, f"{prefix}_medium": traffic.medium,
        f"{prefix}_campaign": traffic.campaign or None, f"{prefix}_campaign_id": traffic.campaign_id or None,
        f"{prefix}_term": traffic.term or None, f"{prefix}_content": traffic.content or None,
        f"{prefix}_landing_page": path, f"{prefix}_landing_page_url": landing.url or None,
        f"{prefix}_landing_page_group": landing_page_group(path, settings),
        f"{prefix}_referrer": traffic.referrer or None, f"{prefix}_click_id": traffic.click_id or None,
        f"{prefix}_at": _iso(session.start), f"{prefix}_device": device_of(_session_user_agent(session))[2],
    }


def _conversion_values(converting: Session, conversion_hit: Hit | None, hits: list[Hit], moment: datetime,
                       conversion_type: str) -> dict[str, Any]:
    last_page = next((hit for hit in reversed(hits) if hit.is_pageview), None)
    page_hit = conversion_hit or last_page
    traffic = converting.traffic
    return {
        "conversion_channel": converting.channel, "conversion_source": traffic.source,
        "conversion_medium": traffic.medium, "conversion_campaign": traffic.campaign or None,
        "conversion_term": traffic.term or None, "conversion_landing_page": page_path(converting.landing.url),
        "conversion_page": page_path(page_hit.url) if page_hit else None,
        "conversion_type": _conversion_type(conversion_type, conversion_hit), "conversion_at": _iso(moment),
    }


def _journey_values(sessions: list[Session], touches: list[Session], hits: list[Hit], moment: datetime,
                    settings: JourneySettings) -> dict[str, Any]:
    def capped(entries: list[str], separator: str = settings.path_separator) -> str | None:
        return join_capped(entries, separator, settings.path_max_length, settings.truncation_marker) or None

    pageviews = sum(session.pageviews for session in sessions)
    channels = [session.channel for session in sessions]
    distinct_channels = list(dict.fromkeys(channels))
    pages = [page_path(hit.url) for hit in hits if hit.is_pageview]
    last_page = next((path for path in reversed(pages) if path), None)
    return {
        "visit_count": len(sessions), "pageview_count": pageviews,
        "avg_pageviews_per_visit": round(pageviews / len(sessions), 2), "touchpoint_count": len(touches),
        "conversion_count": sum(1 for hit in hits if hit.is_conversion),
        "days_to_convert": round((moment - sessions[0].start).total_seconds() / 86400, 1),
        "first_visit_at": _iso(sessions[0].start), "last_visit_at": _iso(sessions[-1].start),
        "channel_path": capped(channels),
        "source_path": capped([session.traffic.source for session in sessions]),
        "campaign_path": capped([session.traffic.campaign for session in sessions]),
        "channels_touched": capped(distinct_channels, CHANNEL_LIST_SEPARATOR),
        "distinct_channel_count": len(distinct_channels),
        "pages_viewed": capped(list(dict.fromkeys(path for path in pages if path))),
        "last_page_before_conversion": last_page,
    }


def _context_values(converting_visitor: str, hits: list[Hit], first: Session) -> dict[str, Any]:
    """Click ids (latest seen on any device) and the converting browser's identity and settings.

    Language and time zone fall back to another device's; consent never does (it is a browser's).
    """
    latest_clicks: dict[str, str] = {}
    for hit in hits:
        latest_clicks.update(landing_evidence(hit.url, hit.utm, hit.click_ids)[1])
    # Prefer the converting device; another device's values only when it has none.
    newest_first = sorted(hits, key=lambda hit: (hit.visitor_id == converting_visitor, hit.occurred_at), reverse=True)

    def latest(attribute: str, *, any_device: bool = True) -> str | None:
        return next((getattr(hit, attribute) for hit in newest_first if getattr(hit, attribute)
                     and (any_device or hit.visitor_id == converting_visitor)), None)

    # The GA session id must belong to the same browser (client id) as the GA client id.
    ga_hit = next((hit for hit in newest_first if hit.ga_client_id), None)
    ga_session_id = next((hit.ga_session_id for hit in newest_first if ga_hit and hit.ga_session_id
                          and hit.ga_client_id in ("", ga_hit.ga_client_id)
                          and hit.visitor_id == ga_hit.visitor_id), None)
    browser, os_name, _ = device_of(_session_user_agent(first))
    return {
        **{name: latest_clicks.get(name) for name in CLICK_ID_VARIABLES},
        "visitor_id": converting_visitor, "ga_client_id": ga_hit.ga_client_id if ga_hit else None,
        "ga_session_id": ga_session_id, "first_click_browser": browser, "first_click_os": os_name,
        "language": latest("language"), "timezone": latest("timezone"),
        "consent": latest("consent", any_device=False) or "unknown",
    }


def _conversion_type(given: str, conversion_hit: Hit | None = None) -> str | None:
    """The caller's type, else the conversion hit's; anything outside the four types is "other"."""
    value = (given or (conversion_hit.conversion_type if conversion_hit else "") or "").lower()
    if value:
        return value if value in CONVERSION_TYPES else "other"
    return "other" if conversion_hit else None


def landing_page_group(path: str | None, settings: JourneySettings) -> str | None:
    """The first configured group whose glob matches ``path``; else its first segment, title-cased."""
    if path is None:
        return None
    for pattern, group in settings.landing_page_groups:
        if fnmatch.fnmatchcase(path, pattern):
            return group
    segment = path.strip("/").split("/")[0]
    return segment.replace("-", " ").replace("_", " ").title() if segment else "Home"


def join_capped(entries: Iterable[str], separator: str, cap: int, marker: str = "…") -> str:
    """``entries`` joined; beyond ``cap`` characters, entries are dropped from the middle.

    The marker stands where entries were dropped, between separators. Entries are kept
    alternately from the front and the back while they fit. When even the first and last entry
    do not fit together, characters are cut from the middle instead.
    """
    entries = [entry for entry in entries if entry]
    full = separator.join(entries)
    if len(full) <= cap:
        return full
    if cap <= len(marker):
        return marker[:max(cap, 0)]

    def fits(head: list[str], tail: list[str]) -> bool:
        return len(separator.join([*head, marker, *tail])) <= cap

    head, tail = entries[:1], entries[-1:]
    if len(entries) >= 2 and fits(head, tail):
        low, high = 1, len(entries) - 2
        grew = True
        while grew and low <= high:
            grew = False
            if fits(head + [entries[low]], tail):
                head.append(entries[low])
                low, grew = low + 1, True
            if low <= high and fits(head, [entries[high]] + tail):
                tail.insert(0, entries[high])
                high, grew = high - 1, True
        return separator.join([*head, marker, *tail])
    keep = cap - len(marker)
    left = (keep + 1) // 2
    return full[:left] + marker + full[len(full) - (keep - left):]


def page_path(url: str | None) -> str | None:
    """The path of ``url`` without query or fragment ("/" for a bare host); None if unparsable."""
    if not url:
        return None
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return None


@lru_cache(maxsize=4096)
def device_of(user_agent: str | None) -> tuple[str | None, str | None, str | None]:
    """(browser family, operating system family, desktop | mobile | tablet) of a user agent.

    Families are ua-parser's ("Chrome", "Mobile Safari", "Windows", "iOS"). The category
    follows the usual heuristics: iPads, Android without "Mobile", and devices ua-parser calls
    tablets are tablets; "Mobi", iPhones, Android and Windows Phone are mobile; the rest desktop.
    iPadOS 13+ Safari claims to be a Mac and so reads desktop.
    """
    if not user_agent:
        return None, None, None
    parsed = parse_user_agent(user_agent[:1024])
    browser = parsed.user_agent.family if parsed.user_agent else None
    os_name = parsed.os.family if parsed.os else None
    brand = (parsed.device.brand or "") if parsed.device else ""
    text = user_agent.lower()
    if "ipad" in text or "tablet" in text or "tablet" in brand.lower() or (
            os_name == "Android" and "mobile" not in text):
        category = "tablet"
    elif "mobi" in text or os_name in ("iOS", "Android", "Windows Phone"):
        category = "mobile"
    else:
        category = "desktop"
    return browser, os_name, category


def _session_user_agent(session: Session) -> str:
    return session.landing.user_agent or next((hit.user_agent for hit in session.hits if hit.user_agent), "")


def _landing(hits: tuple[Hit, ...]) -> Hit:
    return next((hit for hit in hits if hit.is_pageview), hits[0])


def _session(visitor_id: str, hits: list[Hit], settings: JourneySettings) -> Session:
    landing = _landing(tuple(hits))
    traffic = derive(landing.url, landing.referrer, utm=landing.utm, click_ids=landing.click_ids,
                     site_hosts=settings.site_hosts, at=_utc(landing.occurred_at))
    return Session(visitor_id, tuple(hits), traffic)


def _utc(moment: datetime) -> datetime:
    """Aware datetimes as they are; naive ones are taken as UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _as_utc(hits: Iterable[Hit]) -> Iterable[Hit]:
    for hit in hits:
        yield hit if hit.occurred_at.tzinfo is not None else replace(hit, occurred_at=_utc(hit.occurred_at))


def _time(hit: Hit) -> datetime:
    return hit.occurred_at


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
