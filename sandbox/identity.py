"""People an ad platform knows, so its emulator can say whether a hashed identifier matches.

Google and Meta never say why a hashed e-mail or phone did not match: a wrongly normalised
value is accepted and silently matches nobody (shared/reference/ad-platform-conversions.md §2.4,
§3.4, §7). The emulators can do better for tests: a test registers the people the platform
"knows" (with the e-mail and phone as the person typed them), and each emulator indexes the
SHA-256 of the platform's own normal form *and* of the usual mistakes, each labelled. A
received hash then resolves to (person, None) — a match —, to (person, "what went wrong"), or
to nothing.

Each emulator passes its own normal forms (they differ between Google and Meta: §7); nothing
here is shared with closedloop's senders.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Callable

Normaliser = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Person:
    """Someone with an account on the platform: e-mail and phone as they typed them."""

    email: str | None = None
    phone: str | None = None   # E.164 with the country code, e.g. "+1 (800) 555-0100"
    label: str = ""

    def as_json(self) -> dict[str, str | None]:
        return {"label": self.label, "email": self.email, "phone": self.phone}


@dataclass(frozen=True)
class Match:
    person: Person
    problem: str | None   # None: the platform's normal form; else what the sender did wrong


@dataclass
class PeopleIndex:
    """SHA-256 digests of each person's identifiers, right and wrong, by kind ("email", "phone")."""

    normal_forms: dict[str, Normaliser]
    mistakes: dict[str, list[tuple[str, Normaliser]]]
    people: list[Person] = field(default_factory=list)
    _digests: dict[tuple[str, bytes], Match] = field(default_factory=dict)

    def add(self, person: Person) -> None:
        self.people.append(person)
        for kind, raw in (("email", person.email), ("phone", person.phone)):
            if not raw:
                continue
            for problem, form in self.mistakes.get(kind, []):
                self._index(kind, form(raw), Match(person, problem))
            self._index(kind, self.normal_forms[kind](raw), Match(person, None))  # the right form wins

    def _index(self, kind: str, text: str | None, match: Match) -> None:
        if text:
            self._digests[(kind, sha256(text))] = match

    def lookup(self, kind: str, digest: bytes) -> Match | None:
        return self._digests.get((kind, digest))

    def clear(self) -> None:
        self.people.clear()
        self._digests.clear()


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


# -- pieces both platforms' emulators build their normal forms and mistakes from --------------

def trimmed_lower(email: str) -> str:
    return email.strip().lower()


def no_whitespace_lower(email: str) -> str:
    return re.sub(r"\s+", "", email).lower()


def gmail_canonical(email: str) -> str:
    """Google's Gmail rule: no dots in the local part and no ``+tag`` (gmail.com, googlemail.com)."""
    address = no_whitespace_lower(email)
    local, at, domain = address.partition("@")
    if at and domain in ("gmail.com", "googlemail.com"):
        local = local.split("+", 1)[0].replace(".", "")
    return f"{local}{at}{domain}"


def e164_digits(phone: str) -> str:
    """The phone's digits with the country code and no ``+`` (Meta's form)."""
    return re.sub(r"\D", "", phone)


def e164_plus(phone: str) -> str:
    """``+`` and the digits (Google's form)."""
    return "+" + e164_digits(phone)
