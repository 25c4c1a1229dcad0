"""204 means durable: a collector killed with SIGKILL mid-stream has stored every beacon it
acknowledged. A real ``closedloop collector`` process, several client threads, several kills."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlmodel import select

from state.models import Touchpoint
from support import DESKTOP_UA, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SITE = "https://www.example.com"
THREADS = 4


def start(config_path: Path, port: int) -> subprocess.Popen:
    log = config_path.with_suffix(".log")
    with open(log, "ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "sync.cli", "collector", "--config", str(config_path)],
                                   cwd=REPO, stdout=output, stderr=output)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except requests.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("the collector did not start")


def stream(port: int, name: str, acknowledged: list[str], stop: threading.Event) -> None:
    """Post beacons one after another until the collector goes away; remember each one answered 204."""
    session = requests.Session()
    for sequence in range(1_000_000):
        marker = f"{name}-{sequence}"
        body = {"v": 1, "type": "pageview", "vid": f"crash{name}", "ts": int(time.time() * 1000),
                "url": f"{SITE}/?n={marker}"}
        try:
            response = session.post(f"http://127.0.0.1:{port}/collect", data=json.dumps(body), timeout=10,
                                    headers={"Content-Type": "text/plain", "Origin": SITE, "User-Agent": DESKTOP_UA})
        except requests.RequestException:
            return
        if response.status_code == 204:
            acknowledged.append(marker)
        if stop.is_set():
            return


def test_every_acknowledged_beacon_survives_sigkill(store, write_config):
    url = store.url.render_as_string(hide_password=False)
    rng = random.Random(15)
    for round_ in range(3):
        port = free_port()
        config = write_config(f"""
            [state]
            url = "{url}"
            [collector]
            port = {port}
            allowed_origins = ["{SITE}"]
            ip_rate_per_second = 0
            visitor_rate_per_second = 0
        """, name=f"round{round_}.toml")
        process = start(config, port)
        acknowledged: list[str] = []
        stop = threading.Event()
        threads = [threading.Thread(target=stream, args=(port, f"r{round_}t{n}", acknowledged, stop))
                   for n in range(THREADS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        target = rng.randint(100, 600)  # kill at a different point each round
        while len(acknowledged) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert len(acknowledged) >= target, "the collector answered too few beacons before the kill"
        restarted = start(config, port)  # a new process over the same store, as a supervisor would
        try:
            with store.session(readonly=True) as session:
                stored = {row.split("?n=", 1)[1] for row in session.exec(select(Touchpoint.url)).all()}
            lost = [marker for marker in acknowledged if marker not in stored]
            assert lost == [], f"round {round_}: {len(lost)} of {len(acknowledged)} acknowledged beacons lost"
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=60)
