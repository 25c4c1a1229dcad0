"""Attribution models: exact sums, and each model's documented shares."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.journey.attribution import MODELS, Touch, attribute, direct_touch, split, with_milestones

T0 = datetime(2026, 9, 1, tzinfo=timezone.utc)


def touches(n, **flags):
    return [Touch(at=T0 + timedelta(days=i), channel=f"C{i}", **(flags if i == n - 1 else {})) for i in range(n)]


def amounts(credits):
    return [credit.amount for credit in credits]


@given(model=st.sampled_from(MODELS), n=st.integers(1, 30),
       cents=st.integers(0, 10**12), lead=st.integers(0, 29), opportunity=st.integers(0, 29),
       gaps=st.lists(st.integers(0, 10**7), min_size=30, max_size=30))
def test_credits_sum_exactly_to_the_revenue(model, n, cents, lead, opportunity, gaps):
    revenue = Decimal(cents) / 100
    journey = []
    moment = T0
    for i in range(n):
        moment += timedelta(seconds=gaps[i])
        journey.append(Touch(at=moment, channel="x", lead_creation=i == lead % n,
                             opportunity_creation=i == opportunity % n))
    credits = attribute(model, journey, revenue, closed_at=moment + timedelta(days=3))
    assert sum(amounts(credits), Decimal(0)) == revenue
    assert all(credit.amount >= 0 and credit.amount == credit.amount.quantize(Decimal("0.01")) for credit in credits)


def test_first_and_last_click():
    journey = with_milestones(touches(4), lead_created_at=T0 + timedelta(days=2, hours=1), opportunity_created_at=None)
    assert amounts(attribute("first_click", journey, Decimal("100"))) == [100, 0, 0, 0]
    assert amounts(attribute("last_click", journey, Decimal("100"))) == [0, 0, 100, 0]


def test_linear_shares_remainders_deterministically():
    assert amounts(attribute("linear", touches(3), Decimal("100"))) == [Decimal("33.34"), Decimal("33.33"),
                                                                         Decimal("33.33")]


def test_position_based_is_40_20_40():
    assert amounts(attribute("position", touches(4), Decimal("1000"))) == [400, 100, 100, 400]
    assert amounts(attribute("position", touches(2), Decimal("1000"))) == [500, 500]


def test_w_shaped_is_30_30_30_and_10_shared():
    journey = with_milestones(touches(5), lead_created_at=T0 + timedelta(days=1),
                              opportunity_created_at=T0 + timedelta(days=3))
    assert amounts(attribute("w_shaped", journey, Decimal("1000"))) == [300, 300, 50, 300, 50]
    # The three milestones on one touch get 90 %, the others share 10 %.
    journey = with_milestones(touches(3), lead_created_at=T0, opportunity_created_at=T0)
    assert amounts(attribute("w_shaped", journey, Decimal("1000"))) == [900, 50, 50]


def test_time_decay_halves_every_half_life():
    journey = [Touch(at=T0, channel="a"), Touch(at=T0 + timedelta(days=7), channel="b")]
    credits = attribute("time_decay", journey, Decimal("300"), closed_at=T0 + timedelta(days=7),
                        half_life=timedelta(days=7))
    assert amounts(credits) == [100, 200]


def test_split_rejects_sub_cent_totals_and_zero_weights():
    with pytest.raises(ValueError):
        split(Decimal("1.005"), [1, 1])
    with pytest.raises(ValueError):
        attribute("linear", [], Decimal("1"))
    assert amounts(attribute("linear", [direct_touch(T0)], Decimal("12.34"))) == [Decimal("12.34")]


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="unknown attribution model 'u_shape'"):
        attribute("u_shape", touches(1), Decimal(1))
