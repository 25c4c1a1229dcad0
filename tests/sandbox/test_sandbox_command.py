"""`closedloop sandbox` as a user runs it: the printed commands, run exactly as printed, from
another folder, make closedloop enrich the seeded leads and send their revenue to GA4."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import free_port

pytestmark = pytest.mark.slow


class Output:
    """A process's stdout, read on a thread, so the test can wait for a line without blocking."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process) -> None:
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if found := re.search(pattern, line):
                        return found
                left = deadline - time.monotonic()
                assert left > 0, f"no line matching {pattern!r} in:\n" + "\n".join(self.lines)
                self._changed.wait(left)


def test_the_printed_commands_work_from_any_folder_and_show_revenue_within_a_minute(tmp_path):
    ports = [str(free_port()) for _ in range(3)]
    collector = free_port()
    bin_dir = str(Path(sys.executable).parent)  # where `closedloop` is installed
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "100"}
    (tmp_path / "work").mkdir()
    (tmp_path / "elsewhere").mkdir()
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("sandbox", "daemon")}  # noqa: SIM115
    sandbox = subprocess.Popen(["closedloop", "sandbox", "--data-dir", "sbx", "--port", *ports,
                                "--collector-port", str(collector), "--seed", "24"],
                               cwd=tmp_path / "work", env=env, stdout=subprocess.PIPE, stderr=logs["sandbox"],
                               text=True)
    daemon = None
    try:
        out = Output(sandbox)
        out.wait_for("Ctrl-C stops the sandbox", 60)
        printed = out.lines[out.lines.index("In another terminal, from any folder, run:") + 2:]
        commands = printed[:printed.index("")]
        assert [c.split()[0] for c in commands] == ["export"] * 7 + ["closedloop"] * 3
        exported = dict(re.findall(r"export (\w+)=(\S+)", "\n".join(commands)))
        assert set(exported) == {"CLOSEDLOOP_SALESFORCE_CLIENT_ID", "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET",
                                 "CLOSEDLOOP_HUBSPOT_TOKEN", "CLOSEDLOOP_HUBSPOT_CLIENT_SECRET",
                                 "CLOSEDLOOP_GA4_API_SECRET",
                                 "CLOSEDLOOP_GOOGLE_SERVICE_ACCOUNT_FILE", "CLOSEDLOOP_META_ACCESS_TOKEN"}
        exports = "\n".join(commands[:7])
        config = str(tmp_path / "work" / "sbx" / "closedloop.toml")
        config_text = (tmp_path / "work" / "sbx" / "closedloop.toml").read_text()
        assert "change_events = true" in config_text and "webhooks = true" in config_text  # the triggers are on
        assert commands[7:] == [f"  closedloop {verb} --config {config}" for verb in ("migrate", "fields create",
                                                                                      "run")]

        def shell(command: str, **kwargs):
            return subprocess.run(["bash", "-c", f"{exports}\n{command}"], cwd=tmp_path / "elsewhere", env=env,
                                  capture_output=True, text=True, timeout=120, **kwargs)

        for command in commands[7:9]:  # migrate, fields create: exactly as printed, from another folder
            done = shell(command)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
        started = time.monotonic()
        daemon = subprocess.Popen(["bash", "-c", f"{exports}\nexec {commands[9].strip()}"], cwd=tmp_path / "elsewhere",
                                  env=env, stdout=subprocess.DEVNULL, stderr=logs["daemon"])
        sent = out.wait_for(r"seed: (\d+) visitors sent (\d+) beacons", 60)
        assert int(sent.group(1)) == 24 and int(sent.group(2)) > 24
        out.wait_for(r"seed: (\d+) of (\d+) leads enriched", 90)
        ga4 = out.wait_for(r"seed: GA4 received (\d+) purchase\(s\) worth ([\d,.]+)", 90)
        took = time.monotonic() - started
        assert int(ga4.group(1)) > 0 and took < 90, took  # about a minute on an idle machine; CI is shared
        assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()

        report = shell(printed[printed.index("") + 1].split("then, in a third: ")[1].split("   (")[0]
                       + " --format json")
        assert report.returncode == 0, report.stderr
        data = json.loads(report.stdout)
        total = data["rows"][-1]
        assert total["visitors"] > 0 and total["leads"] > 0 and float(total["revenue"]) > 0
        status = shell(f"closedloop status --config {config}")
        assert status.returncode == 0 and "enrich" in status.stdout
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGINT)
            daemon.wait(timeout=60)
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=30)
        sandbox.stdout.close()
        for log in logs.values():
            log.close()
    assert daemon.returncode == 0 and sandbox.returncode == 0
    assert not (tmp_path / "elsewhere" / "state").exists() and os.listdir(tmp_path / "elsewhere") == []
