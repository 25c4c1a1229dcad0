"""Peak memory of the daemon while it enriches a very large CRM.

The Salesforce sandbox runs in its own process with N leads (default 1,000,000) whose visitors
are in closedloop's SQLite store; ``closedloop backfill --crm salesforce`` then enriches every
one of them in its own process, whose resident memory (VmRSS, and the kernel's high-water
mark VmHWM) is sampled twice a second. Target: peak under 300 MB, and flat — the daemon
streams pages of 2,000 records and never holds a whole object in memory, so RSS after 10% of
the leads should be about RSS at the end.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench import scenario, serve
from bench.common import Measurement
from state import Store

CONFIG = """[state]
url = "sqlite:///{db}"

[salesforce]
enabled = true
login_url = "{url}"
ca_bundle = "{ca}"
permission_set = "Closedloop_Integration"
"""


def main(options: list[str]) -> list[Measurement]:
    parser = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=1_000_000)
    args = parser.parse_args(options)
    directory = Path(tempfile.mkdtemp(prefix="closedloop-bench-memory-"))
    with serve.running("salesforce", "--data-dir", str(directory / "sandbox")) as (url, ca):
        control = requests.Session()
        control.verify, control.trust_env = ca, False
        credentials = control.get(f"{url}/_sandbox/credentials", timeout=30).json()
        environ = {**os.environ, "CLOSEDLOOP_SALESFORCE_CLIENT_ID": credentials["client_id"],
                   "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET": credentials["client_secret"]}
        config = directory / "closedloop.toml"
        config.write_text(CONFIG.format(db=directory / "state.db", url=url, ca=ca))
        closedloop = [sys.executable, "-m", "sync.cli"]
        subprocess.run([*closedloop, "migrate", "--config", str(config)], env=environ, check=True)
        subprocess.run([*closedloop, "fields", "create", "--config", str(config)], env=environ, check=True,
                       stdout=subprocess.DEVNULL)
        started = time.monotonic()
        store = Store(f"sqlite:///{directory / 'state.db'}")
        scenario.add_journeys(scenario.World("salesforce", directory, None, None, store, None, None), args.leads)
        store.dispose()
        for start in range(0, args.leads, 20_000):
            rows = [{"LastName": f"L{i}", "Company": "Bench", "Email": scenario.email("v", i)}
                    for i in range(start, min(args.leads, start + 20_000))]
            control.post(f"{url}/_sandbox/records/Lead/seed", json={"records": rows}, timeout=600).raise_for_status()
        print(f"set up {args.leads:,} leads and journeys in {time.monotonic() - started:.0f}s", flush=True)
        started = time.monotonic()
        daemon = subprocess.Popen([*closedloop, "backfill", "--crm", "salesforce", "--config", str(config)],
                                  env={**environ, "COLUMNS": "100"}, stdout=subprocess.PIPE, text=True)
        samples: list[tuple[float, int, int]] = []
        sampler = threading.Thread(target=_sample, args=(daemon, samples), daemon=True)
        sampler.start()
        output, _ = daemon.communicate()
        sampler.join()
        seconds = time.monotonic() - started
        if daemon.returncode != 0 or f"wrote {args.leads}" not in output:
            raise RuntimeError(f"backfill failed ({daemon.returncode}): {output[-2000:]}")
    peak = max(hwm for _, _, hwm in samples) / 1024
    tenth = next(rss for at, rss, _ in samples if at >= seconds * 0.1) / 1024
    last = samples[-1][1] / 1024
    detail = {"leads": args.leads, "seconds": round(seconds, 1), "records_per_second": round(args.leads / seconds),
              "rss_mb_at_10_percent_time": round(tenth), "rss_mb_at_end": round(last),
              "samples": [(round(at), round(rss / 1024)) for at, rss, _ in samples[:: max(1, len(samples) // 40)]]}
    print(f"{args.leads:,} leads in {seconds:.0f}s: peak {peak:.0f} MB (RSS {tenth:.0f} MB at 10% of the run, "
          f"{last:.0f} MB at the end)", flush=True)
    return [Measurement("memory", f"backfill of {args.leads:,} Salesforce leads, peak RSS", peak, "MB",
                        "< 300 MB", peak < 300, detail),
            Measurement("memory", "throughput", args.leads / seconds, "leads/s", "", None, detail)]


def _sample(process: subprocess.Popen, samples: list) -> None:
    started = time.monotonic()
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            samples.append((time.monotonic() - started, int(fields["VmRSS"].split()[0]),
                            int(fields["VmHWM"].split()[0])))
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(0.5)
