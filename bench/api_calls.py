"""API calls per enriched record, against the floor and against a naive integration.

For each CRM and size N: N new leads (Salesforce) / contacts (HubSpot) whose visitors closedloop
already knows; the enrich job runs, then runs again (the next poll, which re-reads the records
closedloop's own writes just touched and must write nothing). Every REST call either emulator
served is counted.

Floor: one write call per 200 (Salesforce sObject Collections) / 100 (HubSpot batch update)
records, plus read paging (2,000 records a query page / 200 a search page) for both polls, plus
the fixed calls that do not grow with N (login, describe, field metadata, one empty page per
other polled object). Target: total ≤ 1.05 × floor.

Naive baseline: the same job with one update call per record (what many integrations do). It
runs for real up to ``--naive-max`` records (HubSpot's 10-second limit makes larger naive runs
take many minutes); above that its count is computed as the measured reads and fixed calls plus
one call per record, which is what the measured runs show it to be.
"""
from __future__ import annotations

import argparse
import math
import time

from adapters.base import WriteResult
from bench import scenario
from bench.common import Measurement



def main(options: list[str]) -> list[Measurement]:
    parser = argparse.ArgumentParser(prog="python -m bench api_calls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--crms", nargs="+", default=["salesforce", "hubspot"], choices=["salesforce", "hubspot"])
    parser.add_argument("--naive-max", type=int, default=1_000, help="largest N the naive baseline really runs")
    args = parser.parse_args(options)
    measurements = []
    for crm in args.crms:
        for size in args.sizes:
            ours = measure(crm, size, naive=False)
            naive = measure(crm, size, naive=True) if size <= args.naive_max else None
            naive_total = naive["total"] if naive else ours["reads"] + ours["fixed"] + size
            ratio = ours["total"] / ours["floor"]
            measurements.append(Measurement(
                "api_calls", f"{crm} {size:,} leads", ours["total"] / size, "calls/record",
                f"≤ 1.05 × floor ({ours['floor'] / size:.4f})", ratio <= 1.05,
                {**ours, "ratio_to_floor": round(ratio, 4), "naive_total": naive_total,
                 "naive_measured": naive is not None, "naive_over_ours": round(naive_total / ours["total"], 1)}))
            print(f"{crm} {size}: {ours['total']} calls (floor {ours['floor']}, ×{ratio:.3f}); naive "
                  f"{naive_total} ({'measured' if naive else 'computed'}), {naive_total / ours['total']:.0f}× ours; "
                  f"{ours['seconds']:.0f}s", flush=True)
    return measurements


def measure(crm: str, size: int, *, naive: bool) -> dict:
    world = scenario.start(crm, tier_max_per_10s=190) if crm == "hubspot" else scenario.start(crm)
    try:
        scenario.add_journeys(world, size)
        ids = scenario.add_leads(world, size)
        if naive:
            make_naive(world)
        emulator = world.emulator
        emulator.reset_log()
        started = time.monotonic()
        first = world.run("enrich")
        second = world.run("enrich")
        seconds = time.monotonic() - started
        if first.result.records_written != size or second.result.records_written != 0:
            raise RuntimeError(f"expected {size} records written then none, got {first.result.records_written} "
                               f"and {second.result.records_written}")
        check_sample(world, ids)
        total, writes, reads = classify(world)
        fixed = total - writes - reads
        write_floor, read_floor = scenario.floor_calls(crm, size)
        reread = math.ceil(size / scenario.READ_PAGE[crm])  # the second poll reads what the first wrote
        other_objects = reads - read_floor - reread  # empty first pages of objects with nothing new
        floor = write_floor + read_floor + reread + max(0, other_objects) + fixed
        return {"total": total, "writes": writes, "reads": reads, "fixed": fixed, "floor": floor,
                "write_floor": write_floor, "read_floor": read_floor + reread, "seconds": round(seconds, 1)}
    finally:
        world.close()


def classify(world) -> tuple[int, int, int]:
    """(all calls, write calls, record-read calls) from the emulator's request log."""
    if world.crm == "salesforce":
        log = [(e["method"], e["path"]) for e in world.emulator.api.log if e["kind"] == "rest"]
        reads = sum(1 for _, path in log if "/query" in path)
    else:
        log = [(e["method"], e["path"]) for e in world.emulator.request_log()]
        reads = sum(1 for _, path in log if path.endswith("/search"))
    writes = sum(1 for method, path in log if method == "PATCH" or path.endswith("/batch/update"))
    return len(log), writes, reads


def check_sample(world, ids: list[str]) -> None:
    field = "CL_First_Click_Channel__c" if world.crm == "salesforce" else "cl_first_click_channel"
    for n in (0, len(ids) // 2, len(ids) - 1):
        record = world.emulator.record(ids[n]) if world.crm == "salesforce" else \
            world.emulator.record("contacts", ids[n])
        if not record.get(field):
            raise RuntimeError(f"record {ids[n]} was not enriched")


def make_naive(world) -> None:
    """Replace batched writes by one update call per record, through the same client library."""
    adapter = world.connections.adapter(world.crm)
    if world.crm == "salesforce":
        def update_records(updates):
            return [_one_sf(adapter, update) for update in updates]
    else:
        from hubspot.crm.contacts import BasicApi, SimplePublicObjectInput

        adapter.api["contacts.basic"] = BasicApi(adapter.api["contacts.batch"].api_client)

        def update_records(updates):
            for update in updates:
                adapter._call("update contact", "contacts.basic", "update", update.id,
                              SimplePublicObjectInput(properties=update.values))
            return [WriteResult(update, True) for update in updates]
    adapter.update_records = update_records


def _one_sf(adapter, update) -> WriteResult:
    adapter._call("update lead", lambda sf: getattr(sf, update.object).update(
        update.id, update.values, headers={"Sforce-Auto-Assign": "FALSE"}))
    return WriteResult(update, True)
