"""Salesforce record ids: 15-character case-sensitive ids and their 18-character case-safe form.

The 3-character suffix encodes, for each block of five characters, which ones are upper case
(https://help.salesforce.com/s/articleView?id=000385585 describes the 15/18 relationship; the
algorithm is the widely published one).
"""
from __future__ import annotations

import itertools
import re
import threading

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_PATTERN = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")


def suffix(id15: str) -> str:
    out = ""
    for block in range(3):
        bits = 0
        for position, char in enumerate(id15[block * 5:block * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        out += _ALPHABET[bits]
    return out


def to18(value: str) -> str | None:
    """The 18-character id for a 15- or 18-character id; None when malformed."""
    if not ID_PATTERN.match(value):
        return None
    if len(value) == 18:
        # 18-character ids are case-insensitive: the suffix says which letters are capitals.
        chars = list(value[:15])
        for block, code in enumerate(value[15:].upper()):
            bits = _ALPHABET.index(code) if code in _ALPHABET else -1
            if bits < 0:
                return None
            for position in range(5):
                index = block * 5 + position
                chars[index] = chars[index].upper() if bits >> position & 1 else chars[index].lower()
        id15 = "".join(chars)
        return id15 + suffix(id15)
    return value + suffix(value)


class IdFactory:
    """Sequential ids per key prefix: ``00Q`` + pod ``5g`` + counter, base 62."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count] = {}
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            number = next(self._counters.setdefault(prefix, itertools.count(1)))
        digits = ""
        while number or len(digits) < 10:
            number, remainder = divmod(number, 62)
            digits = _BASE62[remainder] + digits
        id15 = prefix + "5g" + digits[-10:]
        return id15 + suffix(id15)
