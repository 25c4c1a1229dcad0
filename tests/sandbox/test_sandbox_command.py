"""`closedloop sandbox` as a user runs it: three emulators and instructions that work."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import requests

from support import free_port


def test_sandbox_command_starts_all_three_and_prints_how_to_use_them(tmp_path):
    ports = [str(free_port()) for _ in range(3)]
    with subprocess.Popen([sys.executable, "-m", "sync.cli", "sandbox", "--data-dir", str(tmp_path / "sbx"),
                           "--port", *ports], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            _use_the_sandbox(process, ports, tmp_path)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=15)
    assert process.returncode == 0


def _use_the_sandbox(process, ports, tmp_path):
    """Read the printed instructions and follow them against the running emulators."""
    lines = []
    deadline = time.monotonic() + 30
    while not any("Ctrl-C" in line for line in lines):
        assert time.monotonic() < deadline and process.poll() is None, "".join(lines) + process.stderr.read()
        lines.append(process.stdout.readline())
    output = "".join(lines)
    config = (tmp_path / "sbx" / "closedloop.toml").read_text()
    assert f"https://localhost:{ports[0]}" in output and f'login_url = "https://localhost:{ports[0]}"' in config
    exports = dict(re.findall(r"export (\w+)=(\S+)", output))
    assert set(exports) == {"CLOSEDLOOP_SALESFORCE_CLIENT_ID", "CLOSEDLOOP_SALESFORCE_CLIENT_SECRET",
                            "CLOSEDLOOP_HUBSPOT_TOKEN", "CLOSEDLOOP_GA4_API_SECRET",
                            "CLOSEDLOOP_GOOGLE_SERVICE_ACCOUNT_FILE", "CLOSEDLOOP_META_ACCESS_TOKEN"}
    ca = str(tmp_path / "sbx" / "salesforce" / "ca.pem")
    token = requests.post(f"https://localhost:{ports[0]}/services/oauth2/token", verify=ca, timeout=5,
                          data={"grant_type": "client_credentials"},
                          auth=(exports["CLOSEDLOOP_SALESFORCE_CLIENT_ID"],
                                exports["CLOSEDLOOP_SALESFORCE_CLIENT_SECRET"]))
    assert token.status_code == 200
    hubspot = requests.get(f"http://127.0.0.1:{ports[1]}/crm/v3/properties/contacts", timeout=5,
                           headers={"Authorization": f"Bearer {exports['CLOSEDLOOP_HUBSPOT_TOKEN']}"})
    assert hubspot.status_code == 200
    assert requests.post(f"http://127.0.0.1:{ports[2]}/mp/collect", data="{}", timeout=5).status_code == 204
    env = {**os.environ, **exports}
    check = subprocess.run([sys.executable, "-m", "sync.cli", "migrate", "--config",
                            str(tmp_path / "sbx" / "closedloop.toml")], capture_output=True, text=True, env=env,
                           timeout=60)
    assert check.returncode == 0, check.stderr
