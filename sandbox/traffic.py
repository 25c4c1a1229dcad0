"""Synthetic website traffic for the demo: browsers that visit, return, switch devices and convert.

Each simulated person arrives through one channel mix (paid search, organic search, social,
email, referral, AI assistants, direct), comes back over the following days and weeks — sometimes on a second
device — and a share of them convert by form, call or chat. Every page view is posted to the
real collector exactly as ``t.js`` would post it (beacon v1 over HTTP, with the site's Origin
and a browser user agent), and to the GA4 emulator as gtag.js would, so both systems see the
same visits. The generator is seeded: the same seed gives the same traffic.
"""
from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import requests

SITE = "https://www.example.com"
PAGES = ["/", "/pricing", "/features", "/blog/attribution-guide", "/blog/closing-the-loop", "/customers",
         "/integrations/salesforce", "/integrations/hubspot", "/docs/getting-started", "/about"]
USER_AGENTS = {
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
               "Safari/537.36",
    "mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
           "Safari/605.1.15",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.5 Mobile/15E148 Safari/604.1",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
              "Mobile/15E148 Safari/604.1",
}
# (share, how a visit arrives: landing query string, referrer)
ARRIVALS = {
    "paid_search": (0.22, lambda r: (f"?gclid=Cj0KCQ{r.randrange(10**9)}&utm_source=google&utm_medium=cpc"
                                     f"&utm_campaign={r.choice(['brand', 'competitors', 'attribution-software'])}"
                                     f"&utm_term={r.choice(['closed loop attribution', 'marketing attribution', 'lead source tracking'])}",
                                     "https://www.google.com/")),
    "organic_search": (0.24, lambda r: ("", r.choice(["https://www.google.com/", "https://www.bing.com/",
                                                      "https://duckduckgo.com/"]))),
    "social": (0.14, lambda r: r.choice([("", "https://www.linkedin.com/feed/"), ("", "https://l.facebook.com/"),
                                         ("?utm_source=linkedin&utm_medium=paid_social&utm_campaign=q4-webinar",
                                          "https://www.linkedin.com/")])),
    "email": (0.14, lambda r: (f"?utm_source=newsletter&utm_medium=email&utm_campaign="
                               f"{r.choice(['october-digest', 'november-digest', 'product-update'])}", "")),
    "referral": (0.10, lambda r: ("", r.choice(["https://www.g2.com/products/closedloop/reviews",
                                                "https://partner.example.org/blog/tools"]))),
    "ai_assistant": (0.05, lambda r: ("", r.choice(["https://chatgpt.com/", "https://gemini.google.com/app",
                                                    "https://claude.ai/"]))),
    "direct": (0.16, lambda r: ("", "")),
}
RETURN_ARRIVALS = ["direct", "direct", "organic_search", "email", "paid_search"]


@dataclass
class Device:
    visitor_id: str
    client_id: str
    user_agent: str


@dataclass
class Person:
    """One simulated buyer and what they did."""

    number: int
    channel: str
    devices: list[Device]
    email: str
    phone: str
    ad_consent: str = "granted"  # what the site's consent banner recorded (Consent Mode ad_user_data)
    converted_at: datetime | None = None
    conversion_type: str = ""
    converting_device: Device | None = None
    beacons: int = 0
    # (when, device, landing query string, referrer, pages viewed)
    visits: list[tuple[datetime, Device, str, str, list[str]]] = field(default_factory=list)


class TrafficGenerator:
    """Visits for ``people`` buyers over ``weeks``, posted to a collector and a GA4 emulator."""

    def __init__(self, collector_url: str, ga4_url: str, measurement_id: str, *, seed: int = 7, people: int = 400,
                 weeks: int = 6, conversion_rate: float = 0.35, now: datetime | None = None) -> None:
        self.collector_url, self.ga4_url, self.measurement_id = collector_url.rstrip("/"), ga4_url, measurement_id
        self.random = random.Random(seed)
        self.ads_random = random.Random(seed + 1)  # ad clicks and consent: leaves the rest of the crowd as it was
        self.count, self.weeks, self.conversion_rate = people, weeks, conversion_rate
        self.now = now or datetime.now(timezone.utc)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def plan(self) -> list[Person]:
        """Who visits when, and who converts how (no I/O)."""
        r = self.random
        names = list(ARRIVALS)
        weights = [ARRIVALS[name][0] for name in names]
        people = []
        for n in range(self.count):
            channel = r.choices(names, weights)[0]
            kind = r.choice(["desktop", "mac", "mobile"])
            devices = [Device(f"demo{n:04d}a{r.randrange(16**8):08x}", f"{r.randrange(10**9, 10**10)}."
                              f"{int(self.now.timestamp()) - r.randrange(10**7)}", USER_AGENTS[kind])]
            if r.random() < 0.2:  # returns on a second device
                other = "mobile" if kind != "mobile" else "desktop"
                devices.append(Device(f"demo{n:04d}b{r.randrange(16**8):08x}", f"{r.randrange(10**9, 10**10)}."
                                      f"{int(self.now.timestamp()) - r.randrange(10**6)}", USER_AGENTS[other]))
            person = Person(n, channel, devices, f"buyer{n:04d}@{r.choice(['acme', 'globex', 'initech', 'umbrella'])}"
                                                   f"-{n % 50}.example", f"+1 555 {r.randrange(1000000, 9999999)}")
            first = self.now - timedelta(days=r.uniform(3, self.weeks * 7), hours=r.uniform(0, 23))
            query, referrer = self._paid_social(*ARRIVALS[channel][1](r))
            person.ad_consent = "granted" if self.ads_random.random() < 0.85 else "denied"
            person.visits.append((first, devices[0], query, referrer, self._pages()))
            moment = first
            for _ in range(r.choice([0, 1, 1, 2, 3])):
                moment += timedelta(days=r.uniform(0.5, 6), hours=r.uniform(1, 5))
                if moment > self.now - timedelta(hours=2):
                    break
                returning = r.choice(RETURN_ARRIVALS)
                query, referrer = ARRIVALS[returning][1](r)
                person.visits.append((moment, r.choice(devices[-1:] if len(devices) > 1 and r.random() < 0.6
                                                       else devices), query, referrer, self._pages()))
            if r.random() < self.conversion_rate:
                when, device = person.visits[-1][:2]
                person.converted_at = when + timedelta(minutes=r.uniform(2, 20))
                person.conversion_type = r.choices(["form", "call", "chat"], [0.7, 0.18, 0.12])[0]
                person.converting_device = device
            people.append(person)
        return people

    def _paid_social(self, query: str, referrer: str) -> tuple[str, str]:
        """Most visits from Facebook come from its ads, with the fbclid Meta adds to the link."""
        if referrer == "https://l.facebook.com/" and not query and self.ads_random.random() < 0.7:
            return (f"?fbclid=IwAR{self.ads_random.randrange(16**20):020x}&utm_source=facebook&utm_medium=paid_social"
                    "&utm_campaign=retargeting", referrer)
        return query, referrer

    def _pages(self) -> list[str]:
        return [self.random.choice(PAGES) for _ in range(self.random.choice([1, 2, 2, 3, 4]))]

    def send(self, people: list[Person], progress=None) -> int:
        """Post every visit's beacons; returns how many beacons were accepted."""
        def one(person: Person) -> int:
            accepted = 0
            for moment, device, query, referrer, pages in person.visits:
                session_id = str(int(moment.timestamp()))
                for step, page in enumerate(pages):
                    at = moment + timedelta(minutes=step * 2)
                    url = SITE + page + (query if step == 0 else "")
                    accepted += self._beacon(device, "pageview", at, url, referrer if step == 0 else SITE + pages[step - 1],
                                             session_id, {"ad_user_data": person.ad_consent,
                                                          "ad_personalization": person.ad_consent})
                    self._gtag(device, url, referrer if step == 0 else "", session_id)
            if person.converted_at is not None:
                device = person.converting_device
                extra = {"email": person.email, "conversion_type": person.conversion_type,
                         "ad_user_data": person.ad_consent, "ad_personalization": person.ad_consent}
                if person.conversion_type == "call":
                    extra["phone"] = person.phone
                kind = "identify" if person.conversion_type == "form" else "conversion"
                accepted += self._beacon(device, kind, person.converted_at, SITE + "/contact", SITE + "/pricing",
                                         str(int(person.visits[-1][0].timestamp())), extra)
                for other in person.devices:  # later logins identify the other devices too
                    if other is not device:
                        accepted += self._beacon(other, "identify", person.converted_at + timedelta(days=1),
                                                 SITE + "/login", "", None, {"email": person.email})
            person.beacons = accepted
            if progress:
                progress()
            return accepted

        with ThreadPoolExecutor(max_workers=8) as pool:
            return sum(pool.map(one, people))

    def _beacon(self, device: Device, kind: str, at: datetime, url: str, referrer: str, session_id: str | None,
                extra: dict | None = None) -> int:
        body = {"v": 1, "type": kind, "vid": device.visitor_id, "ts": int(at.timestamp() * 1000), "url": url,
                "referrer": referrer, "ga_client_id": f"GA1.1.{device.client_id}", "lang": "en-US",
                "tz": "America/New_York", "ua": device.user_agent, **(extra or {})}
        if session_id:
            body["ga_session_id"] = session_id
        response = self._session().post(f"{self.collector_url}/collect", data=json.dumps(body), timeout=10,
                                        headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": SITE,
                                                 "User-Agent": device.user_agent})
        return 1 if response.status_code == 204 else 0

    def _gtag(self, device: Device, url: str, referrer: str, session_id: str) -> None:
        query = urlencode({"v": "2", "tid": self.measurement_id, "cid": device.client_id, "sid": session_id,
                           "en": "page_view", "dl": url, "dr": referrer})
        self._session().get(f"{self.ga4_url}/g/collect?{query}", timeout=10)
