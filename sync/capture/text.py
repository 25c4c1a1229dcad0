"""Only valid text reaches the store: one normalisation for everything that comes from outside.

Two things in a Python string cannot be stored alike by both databases:

- **NUL** (``"\\u0000"``): PostgreSQL text cannot hold it at all (a bulk write carrying one is
  refused whole), SQLite keeps it and C-string tools cut the value there. It is removed.
- **Lone surrogates** (``"\\ud800"``, which JSON's ``\\u`` escapes can produce): not characters,
  so not encodable as UTF-8. PostgreSQL refuses them; SQLite stored them as invalid UTF-8
  that every later read of the row failed on. A high and low surrogate that stand next to each
  other are joined into the character they encode (as a UTF-16 decoder would); any other is
  replaced by U+FFFD, the replacement character.

Everything else (right-to-left marks, emoji, control characters) is data and is stored as
it came; how it is shown is the business of whoever prints it.

The collector applies this to every beacon at its edge (``sync.capture.beacon``) and the jobs
to every value read back from a CRM before it reaches the store.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    """``value`` without NUL and with lone surrogates replaced (unchanged when already valid)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if value.isascii() or not _SURROGATE.search(value):
        return value
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def is_clean(value: str) -> bool:
    return "\x00" not in value and (value.isascii() or not _SURROGATE.search(value))


def clean(value: Any) -> Any:
    """:func:`clean_text` applied to every string inside ``value``: dict keys and values, list and
    tuple items, and the fields of dataclass instances (the records adapters return). Other
    values are returned as they are; a value with nothing to clean is returned itself."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        items = [(clean(key), clean(item)) for key, item in value.items()]
        if all(new_key is key and new_item is item for (new_key, new_item), (key, item)
               in zip(items, value.items())):
            return value
        return type(value)(items) if type(value) is not dict else dict(items)
    if isinstance(value, (list, tuple)):
        items = [clean(item) for item in value]
        if all(new is old for new, old in zip(items, value)):
            return value
        return type(value)(items) if not hasattr(value, "_fields") else type(value)(*items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for field in dataclasses.fields(value):
            if not field.init:
                continue
            old = getattr(value, field.name)
            new = clean(old)
            if new is not old:
                changes[field.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value
