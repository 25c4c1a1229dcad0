"""Attribution models: how a deal's revenue is shared among the touches that led to it.

A *touch* is a non-direct session (see ``sync/journey/compute.py``). Every model returns one credit
per touch, in money, and the credits of a deal always add up to its revenue exactly: shares
are computed exactly with fractions, then rounded to the currency's minor unit by the
largest-remainder method, so no cent is created or lost.

Models (names as on the command line):

- ``first_click``: everything to the first touch.
- ``last_click``: everything to the last non-direct touch before the lead was created.
- ``linear``: equal shares.
- ``time_decay``: weight ``2 ** (-age / half_life)``, age measured back from the close.
- ``position``: 40 % first, 40 % last, 20 % shared by the middle (U-shaped).
- ``w_shaped``: 30 % each to the first touch, the lead-creation touch and the
  opportunity-creation touch, 10 % shared by the others (when some of those coincide, their
  30 % shares add up on the same touch; when there are no others, the 10 % is spread over
  the three milestones so nothing is lost).

A deal with no touch at all is credited whole to a single Direct touch.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from typing import Callable, Sequence

MODELS = ("first_click", "last_click", "linear", "time_decay", "position", "w_shaped")
DEFAULT_HALF_LIFE = timedelta(days=7)


@dataclass(frozen=True)
class Touch:
    """One touch on a deal's journey, with what the reports group by."""

    at: datetime
    channel: str
    source: str = ""
    medium: str = ""
    campaign: str = ""
    term: str = ""
    lead_creation: bool = False        # the touch credited with creating the lead
    opportunity_creation: bool = False  # the last touch before the opportunity was created


@dataclass(frozen=True)
class Credit:
    touch: Touch
    amount: Decimal


def attribute(model: str, touches: Sequence[Touch], revenue: Decimal, *, closed_at: datetime | None = None,
              half_life: timedelta = DEFAULT_HALF_LIFE, minor_unit: Decimal = Decimal("0.01")) -> list[Credit]:
    """Share ``revenue`` among ``touches`` (oldest first) under ``model``; credits sum to revenue."""
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r} (expected one of {', '.join(MODELS)})")
    if not touches:
        raise ValueError("a deal needs at least one touch (use a Direct touch when there is none)")
    touches = sorted(touches, key=lambda touch: touch.at)
    weights = _WEIGHTS[model](touches, closed_at or touches[-1].at, half_life)
    return [Credit(touch, amount) for touch, amount in zip(touches, split(revenue, weights, minor_unit))]


def split(total: Decimal, weights: Sequence[Fraction], minor_unit: Decimal = Decimal("0.01")) -> list[Decimal]:
    """Split ``total`` in proportion to ``weights`` into amounts of ``minor_unit`` that sum to it exactly."""
    weight_sum = sum(weights, Fraction(0))
    if weight_sum <= 0:
        raise ValueError("weights must add up to more than zero")
    units = Fraction(total) / Fraction(minor_unit)
    if units.denominator != 1:
        raise ValueError(f"{total} is not a whole number of {minor_unit}")
    exact = [units * weight / weight_sum for weight in weights]
    floors = [int(share.__floor__()) for share in exact]
    leftover = int(units) - sum(floors)
    # Largest remainders first; ties go to the earlier touch so results are deterministic.
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:leftover]:
        floors[i] += 1
    return [(Decimal(count) * minor_unit).quantize(minor_unit, rounding=ROUND_FLOOR) for count in floors]


def _first(touches, closed_at, half_life):
    return [Fraction(1)] + [Fraction(0)] * (len(touches) - 1)


def _last(touches, closed_at, half_life):
    index = max((i for i, t in enumerate(touches) if t.lead_creation), default=len(touches) - 1)
    return [Fraction(int(i == index)) for i in range(len(touches))]


def _linear(touches, closed_at, half_life):
    return [Fraction(1)] * len(touches)


def _time_decay(touches, closed_at, half_life):
    # 2 ** (-age / half_life), kept exact enough by working in float then converting; the
    # final split is exact whatever the weights are.
    seconds = half_life.total_seconds()
    return [Fraction(2 ** (-max((closed_at - t.at).total_seconds(), 0) / seconds)).limit_denominator(10**12)
            or Fraction(1, 10**12) for t in touches]


def _position(touches, closed_at, half_life):
    n = len(touches)
    if n == 1:
        return [Fraction(1)]
    if n == 2:
        return [Fraction(1, 2), Fraction(1, 2)]
    middle = Fraction(20, 100) / (n - 2)
    return [Fraction(40, 100)] + [middle] * (n - 2) + [Fraction(40, 100)]


def _w_shaped(touches, closed_at, half_life):
    n = len(touches)
    milestones = [0]
    lead = next((i for i, t in enumerate(touches) if t.lead_creation), n - 1)
    opportunity = next((i for i, t in enumerate(touches) if t.opportunity_creation), n - 1)
    milestones += [lead, opportunity]
    weights = [Fraction(0)] * n
    for index in milestones:
        weights[index] += Fraction(30, 100)
    others = [i for i in range(n) if i not in set(milestones)]
    pool = others or sorted(set(milestones))
    for index in pool:
        weights[index] += Fraction(10, 100) / len(pool)
    return weights


_WEIGHTS: dict[str, Callable] = {"first_click": _first, "last_click": _last, "linear": _linear,
                                 "time_decay": _time_decay, "position": _position, "w_shaped": _w_shaped}


def direct_touch(at: datetime) -> Touch:
    """The stand-in touch for a deal whose journey had no non-direct session."""
    return Touch(at=at, channel="Direct", source="(direct)", medium="(none)", lead_creation=True,
                 opportunity_creation=True)


def with_milestones(touches: Sequence[Touch], lead_created_at: datetime | None,
                    opportunity_created_at: datetime | None) -> list[Touch]:
    """Mark the last touch at or before each milestone (lead creation, opportunity creation)."""
    marked = list(touches)
    for flag, moment in (("lead_creation", lead_created_at), ("opportunity_creation", opportunity_created_at)):
        if moment is None:
            continue
        candidates = [i for i, touch in enumerate(marked) if touch.at <= moment]
        if candidates:
            marked[candidates[-1]] = replace(marked[candidates[-1]], **{flag: True})
    return marked
