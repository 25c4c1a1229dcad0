"""Running the collector (and admin) apps under uvicorn, on a background thread inside the daemon.

Client addresses: uvicorn believes ``X-Forwarded-For`` only from the proxies listed in
``[collector] trusted_proxies`` (addresses or networks); with none listed it believes no one,
and the per-address limits count the address that connected.
"""
from __future__ import annotations

import threading
import time

import uvicorn


def proxy_options(trusted_proxies: list[str] | None) -> dict:
    """uvicorn's settings for whose ``X-Forwarded-For`` to believe (nobody's, unless listed)."""
    trusted = list(trusted_proxies or [])
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or ""}


class BackgroundServer:
    """uvicorn on a daemon thread. Off the main thread uvicorn installs no signal handlers,
    which is what we want: the daemon's main thread owns SIGTERM/SIGINT."""

    def __init__(self, app, host: str, port: int, *, trusted_proxies: list[str] | None = None) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                                    lifespan="on", timeout_graceful_shutdown=5,
                                                    **proxy_options(trusted_proxies)))
        self.thread = threading.Thread(target=self.server.run, name="collector", daemon=True)
        self.host = host

    def start(self, timeout: float = 15.0) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the collector could not listen on {self.host}:{self.server.config.port}")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
