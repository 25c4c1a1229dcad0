"""A deliberately small HTTP layer for the emulators, on the standard library's threaded server.

Why not an ASGI framework: fault injection needs the raw socket. An emulator must be able to
drop a connection without a byte of response, or apply a write and then lose the response,
exactly as a flaky network does; ``http.server`` hands us the socket, an ASGI server does not.

An emulator is any callable ``app(request) -> Response``; :class:`Router` maps method + path
regex to handler functions. Raise :class:`DropConnection` to close the socket unanswered.
"""
from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from sandbox.tls import TLSFiles


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers that need their port up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DropConnection(Exception):
    """Raised by a handler to close the connection without sending any response."""


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    raw_target: str = ""
    path_params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        value = self.headers.get(name)
        return default if value is None else value

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """Decode the body as JSON (raises ``ValueError`` on bad JSON)."""
        return json.loads(self.body.decode("utf-8") or "null")

    def form(self) -> dict[str, str]:
        """Decode an ``application/x-www-form-urlencoded`` body (last value wins)."""
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {key: values[-1] for key, values in parsed.items()}


@dataclass
class Response:
    """What a handler returns."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None,
             content_type: str = "application/json;charset=UTF-8") -> "Response":
        merged = {"Content-Type": content_type}
        merged.update(headers or {})
        return cls(status, json.dumps(data, separators=(",", ":")).encode("utf-8"), merged)

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8",
             headers: dict[str, str] | None = None) -> "Response":
        merged = {"Content-Type": content_type}
        merged.update(headers or {})
        return cls(status, text.encode("utf-8"), merged)

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> "Response":
        return cls(status, b"", dict(headers or {}))


Handler = Callable[[Request], Response]


class Router:
    """Method + regex routing; named groups become ``request.path_params``."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern + r"\Z"), handler))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.add(method, pattern, handler)
            return handler
        return decorate

    def resolve(self, request: Request) -> Handler | None:
        """Find the handler for ``request`` (filling ``path_params``), or None."""
        path_matched = False
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match:
                path_matched = True
                if method == request.method:
                    request.path_params = match.groupdict()
                    return handler
        if path_matched:
            return _method_not_allowed
        return None


def _method_not_allowed(request: Request) -> Response:
    return Response.json([{"errorCode": "METHOD_NOT_ALLOWED",
                           "message": f"HTTP Method '{request.method}' not allowed."}], status=405)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app: Callable[[Request], Response]
    server_name_header = "sandbox"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive request.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(method=self.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
                          headers=self.headers, body=body, raw_target=self.path)
        try:
            response = type(self).app(request)
        except DropConnection:
            self._drop()
            return
        if response.delay_seconds:
            time.sleep(response.delay_seconds)
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, ssl_context: ssl.SSLContext | None):
        self._ssl_context = ssl_context
        super().__init__(address, handler)

    def get_request(self):
        sock, address = super().get_request()
        if self._ssl_context is not None:
            # Handshake lazily in the worker thread so one slow client cannot block accept().
            sock = self._ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request, client_address) -> None:
        # Clients that vanish mid-request (timeouts in fault tests) are expected here.
        pass


@dataclass
class RunningServer:
    """A started emulator server: where it listens and how to stop it."""

    host: str
    port: int
    scheme: str
    httpd: _Server = field(repr=False)
    thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        """Base URL without a trailing slash. HTTPS uses ``localhost`` to match the certificate."""
        host = "localhost" if self.scheme == "https" else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def serve_in_thread(app: Callable[[Request], Response], *, host: str = "127.0.0.1", port: int = 0,
                    tls: TLSFiles | None = None, name: str = "sandbox") -> RunningServer:
    """Serve ``app`` on ``host:port`` (0 = an ephemeral port) in a daemon thread."""
    handler = type(f"{name.title()}Handler", (_Handler,), {"app": staticmethod(app)})
    context = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.cert_pem), str(tls.key_pem))
    httpd = _Server((host, port), handler, context)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"{name}-server", daemon=True)
    thread.start()
    return RunningServer(host=host, port=httpd.server_address[1], scheme="https" if tls else "http",
                         httpd=httpd, thread=thread)


class ServedApp:
    """An emulator that serves itself (its ``__call__``) on a thread: ``start``, ``stop``, ``url``
    and ``ca_path``. A subclass names its server and sets ``self.tls`` to serve HTTPS; one that
    starts more (its own OAuth server, a gRPC port, webhook deliveries) extends ``start`` and
    ``stop`` and calls these."""

    server_name = "sandbox"
    tls: TLSFiles | None = None
    _server: RunningServer | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
        """Serve on ``host:port`` (0: an ephemeral port)."""
        self._server = serve_in_thread(self, host=host, port=port, tls=self.tls, name=self.server_name)
        return self._server

    def stop(self) -> None:
        if self._server:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        """Scheme, host and port, no trailing slash (HTTPS names ``localhost``, as the certificate does)."""
        assert self._server, f"start() the {self.server_name} emulator first"
        return self._server.url

    @property
    def ca_path(self) -> Path | None:
        """The CA certificate a client must trust, when serving HTTPS."""
        return self.tls.ca_pem if self.tls else None
