"""Values that came from outside (UTM tags, referrers, CRM fields, remote error messages), shown
as inert text in a terminal or a spreadsheet.

Anyone on the internet chooses a campaign name, and a CRM user chooses a stage or field value.
Printed raw, such a value can restyle or crash a rich table (``[/bogus]`` is rich markup),
move the cursor or rewrite the screen (ANSI escape sequences), plant a clickable link with a
hidden target (OSC 8), reorder the text around it (bidirectional overrides), or become a
formula when an export is opened in a spreadsheet (``=HYPERLINK(...)``). Every CLI table and
export goes through this module; the CLI and the reports share it.

- :func:`plain`: the value with escape sequences and control characters removed (line breaks
  and tabs become a space, lone surrogates U+FFFD), for plain ``click.echo`` output.
- :func:`cell`: :func:`plain` as a :class:`rich.text.Text`, which rich never parses for markup
  or emoji codes; for table cells.
- :func:`markup`: :func:`plain` with rich markup escaped, for a value placed inside a string
  that does use markup (``f"[red]failed[/red] {markup(message)}"``).
- :func:`spreadsheet_cell`: OWASP's rule against CSV/formula injection
  (https://owasp.org/www-community/attacks/CSV_Injection): a cell that starts with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a single quote, so
  spreadsheet programs show it as text. Numbers closedloop computes itself are not passed
  through it (a negative ROI stays a number).

The escape-sequence patterns follow ECMA-48 (CSI ``ESC [ ... final``, string commands OSC, DCS,
SOS, PM and APC ended by ST or, for OSC, BEL) and xterm's OSC 8 hyperlinks. Small packages that
strip ANSI colours exist, but none also removes C1 controls, bidirectional overrides and lone
surrogates, which a terminal or a reader would act on too.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from rich.markup import escape
from rich.text import Text

# String commands (OSC, DCS, SOS, PM, APC) up to ST (ESC \ or 0x9c) or BEL; an unterminated
# one to the end of the value. Then CSI sequences, then any other two-byte ESC sequence.
_ESCAPES = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|$)"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|\x1b[ -~]?")
_BREAKS = re.compile(r"[\t\n\r\v\f\x85\u2028\u2029]+")
# Bidirectional embedding, override and isolate controls ("Trojan Source", CVE-2021-42574).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def plain(value: Any) -> str:
    """``value`` as text with no escape sequence, control character or bidi override left."""
    text = "" if value is None else str(value)
    if text.isprintable() and "\x1b" not in text:
        return text  # the common case: nothing to do
    text = _BREAKS.sub(" ", _ESCAPES.sub("", text))
    return "".join("\ufffd" if unicodedata.category(char) == "Cs" else char for char in text
                   if unicodedata.category(char) != "Cc" and char not in _BIDI)


def cell(value: Any, style: str = "") -> Text:
    """A rich table cell that shows ``value`` literally (no markup, no emoji codes)."""
    return Text(plain(value), style=style)


def markup(value: Any) -> str:
    """``value`` for use inside a rich markup string."""
    return escape(plain(value))


def spreadsheet_cell(value: Any) -> Any:
    """A CSV/spreadsheet cell that a spreadsheet program will not run as a formula."""
    if not isinstance(value, str):
        return value
    return "'" + value if value.startswith(FORMULA_STARTS) else value
