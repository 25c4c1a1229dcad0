"""From stored tracker hits to sessions, touches and the journey variables of the catalogue.

One function serves the enrich job, ``closedloop explain`` and the reports:
:func:`compute_variables` takes every hit of a person (all their devices) and a conversion
time, and returns each variable of :mod:`sync.variables`, computed from hits at or before that
time only.

Definitions:

- A **session** is a run of one device's hits without 30 minutes of inactivity; a page view
  arriving with new campaign parameters or a new click id starts a new session (the same
  rule the tracker applies). Sessions of several devices merge into one journey by time.
- A **touch** is a session with campaign parameters, a click id or an external referrer
  (anything but ``(direct) / (none)``).
- **First click** is the first touch; **last click** the last touch at or before the
  conversion; with no touch at all, both are the first/last session and read Direct.
- The **conversion** session is the last session that started at or before the conversion;
  its conversion hit (form, call, chat) gives ``conversion_type`` and ``conversion_page``.
- Paths (``channel_path``, ``source_path``, ``campaign_path``, ``channels_touched``,
  ``pages_viewed``) are capped at ``path_max_length`` characters by dropping entries from the
  middle and writing the truncation marker there, so the first and last entries survive.
- Datetimes are ISO 8601 UTC strings (``2026-11-24T10:00:00Z``); ``days_to_convert`` has one
  decimal, ``avg_pageviews_per_visit`` two. A variable that cannot be known is ``None``.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from ua_parser import parse as parse_user_agent

from sync.traffic import CLICK_ID_ORDER, TrafficSource, derive, url_parameters
from sync.variables import VARIABLES

CLICK_ID_VARIABLES = ("gclid", "gbraid", "wbraid", "fbclid", "msclkid", "ttclid", "li_fat_id")


@dataclass(frozen=True)
class Hit:
    """One stored tracker event, as the journey computation sees it."""

    visitor_id: str
    occurred_at: datetime
    kind: str  # "pageview" | "identify" | "conversion"
    url: str
    referrer: str = ""
    utm: Mapping[str, str] = field(default_factory=dict)
    click_ids: Mapping[str, str] = field(default_factory=dict)
    ga_client_id: str = ""
    ga_session_id: str = ""
    language: str = ""
    timezone: str = ""
    user_agent: str = ""
    conversion_type: str = ""
    consent: str = ""

    @property
    def is_conversion(self) -> bool:
        return self.kind == "conversion" or bool(self.kind == "identify" and self.conversion_type)


@dataclass(frozen=True)
class JourneySettings:
    site_hosts: tuple[str, ...] = ()
    session_timeout: timedelta = timedelta(minutes=30)
    path_max_length: int = 255
    path_separator: str = " > "
    truncation_marker: str = "…"
    landing_page_groups: tuple[tuple[str, str], ...] = ()


@dataclass
class Session:
    """Consecutive hits of one device."""

    visitor_id: str
    hits: list[Hit]
    traffic: TrafficSource

    @property
    def start(self) -> datetime:
        return self.hits[0].occurred_at

    @property
    def end(self) -> datetime:
        return self.hits[-1].occurred_at

    @property
    def landing(self) -> Hit:
        return next((hit for hit in self.hits if hit.kind == "pageview"), self.hits[0])

    @property
    def pageviews(self) -> int:
        return sum(1 for hit in self.hits if hit.kind == "pageview")

    @property
    def is_direct(self) -> bool:
        return self.traffic.is_direct

    @property
    def channel(self) -> str:
        return self.traffic.channel.channel if self.traffic.channel else "Unassigned"


@dataclass(frozen=True)
class SessionExplanation:
    """Why a session got its source and channel (for ``closedloop explain``)."""

    visitor_id: str
    start: datetime
    end: datetime
    pageviews: int
    landing_page: str
    source: str
    medium: str
    campaign: str
    source_reason: str
    channel: str
    rule: str
    rule_reason: str


def _campaign_key(hit: Hit) -> str:
    """What counts as "a new campaign arrival" on a page view (empty: none)."""
    params = url_parameters(hit.url)
    utm = {**{k: v for k, v in params.items() if k.startswith("utm_")}, **dict(hit.utm)}
    clicks = {**{k: v for k, v in params.items() if k in CLICK_ID_ORDER}, **dict(hit.click_ids)}
    parts = [utm.get("utm_source", ""), utm.get("utm_medium", ""), utm.get("utm_campaign", "")]
    parts += [clicks.get(key, "") for key in CLICK_ID_ORDER]
    return "|".join(parts) if any(parts) else ""


def sessionize(hits: Iterable[Hit], settings: JourneySettings) -> list[Session]:
    """Sessions of every device, merged and ordered by start time."""
    by_visitor: dict[str, list[Hit]] = {}
    for hit in hits:
        by_visitor.setdefault(hit.visitor_id, []).append(hit)
    sessions: list[Session] = []
    for visitor_id, visitor_hits in by_visitor.items():
        visitor_hits.sort(key=lambda hit: hit.occurred_at)
        current: list[Hit] = []
        current_key = ""
        for hit in visitor_hits:
            key = _campaign_key(hit) if hit.kind == "pageview" else ""
            new_campaign = bool(key) and key != current_key
            if current and (hit.occurred_at - current[-1].occurred_at > settings.session_timeout or new_campaign):
                sessions.append(_session(visitor_id, current, settings))
                current, current_key = [], ""
            current.append(hit)
            if key:
                current_key = key
        if current:
            sessions.append(_session(visitor_id, current, settings))
    sessions.sort(key=lambda session: (session.start, session.visitor_id))
    return sessions


def _session(visitor_id: str, hits: list[Hit], settings: JourneySettings) -> Session:
    landing = next((hit for hit in hits if hit.kind == "pageview"), hits[0])
    traffic = derive(dict(landing.utm), dict(landing.click_ids), landing.referrer, settings.site_hosts, landing.url)
    return Session(visitor_id, hits, traffic)


def explain(hits: Iterable[Hit], settings: JourneySettings) -> list[SessionExplanation]:
    """Every session with the evidence behind its source and the rule behind its channel."""
    explanations = []
    for session in sessionize(hits, settings):
        match = session.traffic.channel
        explanations.append(SessionExplanation(
            visitor_id=session.visitor_id, start=session.start, end=session.end, pageviews=session.pageviews,
            landing_page=_path(session.landing.url), source=session.traffic.source, medium=session.traffic.medium,
            campaign=session.traffic.campaign, source_reason=session.traffic.reason,
            channel=match.channel if match else "Unassigned", rule=match.rule if match else "unassigned",
            rule_reason=match.reason if match else ""))
    return explanations


def compute_variables(hits: Iterable[Hit], conversion_at: datetime, settings: JourneySettings, *,
                      conversion_type: str = "") -> dict[str, Any]:
    """Every catalogue variable for this person's journey up to ``conversion_at``."""
    values: dict[str, Any] = {name: None for name in VARIABLES}
    hits = sorted((hit for hit in hits if hit.occurred_at <= conversion_at), key=lambda hit: hit.occurred_at)
    values.update(visit_count=0, pageview_count=0, touchpoint_count=0, conversion_count=0,
                  distinct_channel_count=0, conversion_at=_iso(conversion_at), consent="unknown")
    if not hits:
        if conversion_type:
            values["conversion_type"] = conversion_type
        return values
    sessions = sessionize(hits, settings)
    touches = [session for session in sessions if not session.is_direct]
    first = touches[0] if touches else sessions[0]
    last = touches[-1] if touches else sessions[-1]
    converting = sessions[-1]
    values.update(_click_values("first_click", first, settings))
    values.update(_click_values("last_click", last, settings))
    conversion_hit = next((hit for hit in reversed(hits) if hit.is_conversion), None)
    last_page_hit = next((hit for hit in reversed(hits) if hit.kind == "pageview"), None)
    values.update(
        conversion_channel=converting.channel, conversion_source=converting.traffic.source,
        conversion_medium=converting.traffic.medium, conversion_campaign=converting.traffic.campaign or None,
        conversion_term=converting.traffic.term or None, conversion_landing_page=_path(converting.landing.url),
        conversion_page=_path((conversion_hit or last_page_hit or hits[-1]).url),
        conversion_type=conversion_type or (conversion_hit.conversion_type if conversion_hit else None) or
        ("other" if conversion_hit else None),
    )
    pageviews = sum(session.pageviews for session in sessions)
    cap, separator, marker = settings.path_max_length, settings.path_separator, settings.truncation_marker
    channels = [session.channel for session in sessions]
    distinct_channels = list(dict.fromkeys(channels))
    pages = list(dict.fromkeys(_path(hit.url) for hit in hits if hit.kind == "pageview"))
    values.update(
        visit_count=len(sessions), pageview_count=pageviews,
        avg_pageviews_per_visit=round(pageviews / len(sessions), 2), touchpoint_count=len(touches),
        conversion_count=sum(1 for hit in hits if hit.is_conversion),
        days_to_convert=round((conversion_at - sessions[0].start).total_seconds() / 86400, 1),
        first_visit_at=_iso(sessions[0].start), last_visit_at=_iso(sessions[-1].start),
        channel_path=join_capped(channels, separator, cap, marker),
        source_path=join_capped([session.traffic.source for session in sessions], separator, cap, marker),
        campaign_path=join_capped([s.traffic.campaign for s in sessions if s.traffic.campaign], separator, cap,
                                  marker) or None,
        channels_touched=join_capped(distinct_channels, ", ", cap, marker),
        distinct_channel_count=len(distinct_channels),
        pages_viewed=join_capped(pages, " | ", cap, marker) or None,
        last_page_before_conversion=_path(last_page_hit.url) if last_page_hit else None,
    )
    latest = {}
    for hit in hits:
        clicks = {**{k: v for k, v in url_parameters(hit.url).items() if k in CLICK_ID_VARIABLES},
                  **{k: v for k, v in hit.click_ids.items() if v}}
        latest.update(clicks)
        for attribute in ("language", "timezone", "consent", "ga_client_id", "ga_session_id"):
            if getattr(hit, attribute):
                latest[attribute] = getattr(hit, attribute)
    for name in CLICK_ID_VARIABLES:
        values[name] = latest.get(name)
    browser, os_name, _ = _user_agent(first.landing.user_agent)
    values.update(first_click_browser=browser, first_click_os=os_name, language=latest.get("language"),
                  timezone=latest.get("timezone"), consent=latest.get("consent") or "unknown",
                  visitor_id=(conversion_hit or hits[-1]).visitor_id, ga_client_id=latest.get("ga_client_id"),
                  ga_session_id=latest.get("ga_session_id"))
    return values


def _click_values(prefix: str, session: Session, settings: JourneySettings) -> dict[str, Any]:
    traffic, landing = session.traffic, session.landing
    return {
        f"{prefix}_channel": session.channel, f"{prefix}_source": traffic.source, f"{prefix}_medium": traffic.medium,
        f"{prefix}_campaign": traffic.campaign or None, f"{prefix}_campaign_id": traffic.campaign_id or None,
        f"{prefix}_term": traffic.term or None, f"{prefix}_content": traffic.content or None,
        f"{prefix}_landing_page": _path(landing.url), f"{prefix}_landing_page_url": landing.url or None,
        f"{prefix}_landing_page_group": landing_page_group(_path(landing.url), settings),
        f"{prefix}_referrer": traffic.referrer or None, f"{prefix}_click_id": traffic.click_id or None,
        f"{prefix}_at": _iso(session.start), f"{prefix}_device": _user_agent(landing.user_agent)[2],
    }


def landing_page_group(path: str | None, settings: JourneySettings) -> str | None:
    """The first configured group whose glob matches; else the first path segment ("Home" for /)."""
    if path is None:
        return None
    for pattern, group in settings.landing_page_groups:
        if fnmatch.fnmatchcase(path, pattern):
            return group
    segment = path.strip("/").split("/")[0]
    return segment.replace("-", " ").replace("_", " ").title() if segment else "Home"


def join_capped(entries: list[str], separator: str, cap: int, marker: str = "…") -> str:
    """Join ``entries``; beyond ``cap`` characters drop entries from the middle (marker in their place)."""
    entries = [entry for entry in entries if entry]
    full = separator.join(entries)
    if len(full) <= cap:
        return full
    if len(entries) < 2:
        return full[: max(0, cap - len(marker))] + marker
    head, tail = [entries[0]], [entries[-1]]

    def render(h: list[str], t: list[str]) -> str:
        return separator.join([*h, marker, *t])

    if len(render(head, tail)) > cap:
        return full[: max(0, cap - len(marker))] + marker
    low, high, grow_head = 1, len(entries) - 2, True
    while low <= high:
        if grow_head and len(render(head + [entries[low]], tail)) <= cap:
            head.append(entries[low])
            low += 1
        elif not grow_head and len(render(head, [entries[high]] + tail)) <= cap:
            tail.insert(0, entries[high])
            high -= 1
        else:
            break
        grow_head = not grow_head
    return render(head, tail)


def _path(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=4096)
def _user_agent(user_agent: str) -> tuple[str | None, str | None, str | None]:
    """(browser, operating system, device category) for a user agent string."""
    if not user_agent:
        return None, None, None
    parsed = parse_user_agent(user_agent[:512])
    browser = parsed.user_agent.family if parsed.user_agent else None
    os_name = parsed.os.family if parsed.os else None
    device = parsed.device.family if parsed.device else ""
    text = user_agent.lower()
    if "ipad" in text or "tablet" in text or (os_name == "Android" and "mobile" not in text):
        category = "tablet"
    elif os_name in ("iOS", "Android", "Windows Phone") or "mobile" in text or device == "iPhone":
        category = "mobile"
    else:
        category = "desktop"
    return browser, os_name, category
