"""Importing ad spend from CSV (``closedloop spend import FILE.csv``).

Columns (header row, any order): ``date`` (YYYY-MM-DD), ``channel`` and/or ``source``,
optional ``campaign``, optional ``keyword`` (or ``term``), ``cost``, optional ``currency``.
Spend is joined to the report at the level the file gives: a campaign's cost without keywords
belongs to the campaign as a whole, never to one of its keyword rows. The file is checked whole first:
every bad row is reported with its line number and column, and nothing is imported until the
file is clean. Re-importing the same day/channel/source/campaign replaces its cost.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlmodel import Session

from adapters.errors import ConfigError
from state.models import Spend
from state.upsert import upsert


@dataclass
class SpendRow:
    day: str
    channel: str
    source: str
    campaign: str
    cost: Decimal
    currency: str
    keyword: str = ""


def parse_spend(path: Path) -> list[SpendRow]:
    """Parse and check the whole file; raises ConfigError listing every bad line."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip().lower() for name in reader.fieldnames or []]
        missing = [name for name in ("date", "cost") if name not in header]
        if missing or not ({"channel", "source"} & set(header)):
            need = missing + ([] if {"channel", "source"} & set(header) else ["channel or source"])
            raise ConfigError(f"{path}:1: header lacks {', '.join(need)} (expected date, channel and/or source, "
                              "campaign, keyword, cost, currency)")
        rows, problems = [], []
        for line, raw in enumerate(reader, start=2):
            record = {str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
            try:
                day = date.fromisoformat(record.get("date", "")).isoformat()
            except ValueError:
                problems.append(f"{path}:{line}: date: {record.get('date', '')!r} is not a YYYY-MM-DD date")
                continue
            try:
                cost = Decimal(record.get("cost", "").replace(",", ""))
                if cost < 0 or not cost.is_finite():
                    raise InvalidOperation
            except InvalidOperation:
                problems.append(f"{path}:{line}: cost: {record.get('cost', '')!r} is not a non-negative number")
                continue
            if not record.get("channel") and not record.get("source"):
                problems.append(f"{path}:{line}: channel/source: both are empty; one is needed")
                continue
            currency = record.get("currency", "").upper()
            if currency and (len(currency) != 3 or not currency.isalpha()):
                problems.append(f"{path}:{line}: currency: {currency!r} is not a three-letter code")
                continue
            rows.append(SpendRow(day, record.get("channel", ""), record.get("source", ""),
                                 record.get("campaign", ""), cost, currency,
                                 record.get("keyword", "") or record.get("term", "")))
    if problems:
        raise ConfigError("\n".join(problems + [f"{path}: nothing imported ({len(problems)} bad row(s))"]))
    return rows


def import_spend(session: Session, rows: list[SpendRow]) -> int:
    upsert(session, Spend, [{"day": r.day, "channel": r.channel, "source": r.source, "campaign": r.campaign,
                             "keyword": r.keyword, "cost": str(r.cost), "currency": r.currency} for r in rows],
           ["day", "channel", "source", "campaign", "keyword"],
           lambda table, new: {"cost": new.cost, "currency": new.currency})
    return len(rows)
