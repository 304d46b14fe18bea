"""Real backends for the health tests: HTTP servers that can be stopped, restarted and made
to answer a chosen status, each on its own loopback address (127.0.0.0/8 is all local).
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import socket
import threading
from collections.abc import Iterator

from glb_agent.config.model import HealthCheck, HttpCheck, TcpCheck
from glb_agent.health.target import Target


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits += 1
        body = f"status {self.server.status}\n".encode()
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    status = 200
    hits = 0


class HttpBackend:
    """A real HTTP server on ``address``; ``stop()`` closes the socket (connection refused)."""

    def __init__(self, address: str, port: int = 0) -> None:
        self.address = ipaddress.IPv4Address(address)
        self.port = port
        self.status = 200
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HttpBackend:
        assert self._server is None
        server = _Server((str(self.address), self.port), _Handler)
        server.status = self.status
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def set_status(self, status: int) -> None:
        self.status = status
        if self._server is not None:
            self._server.status = status

    @property
    def running(self) -> bool:
        return self._server is not None

    def target(self, service: str = "web", **check: object) -> Target:
        hc = HealthCheck(http=HttpCheck(port=self.port, path="/health"), **check)  # type: ignore[arg-type]
        return Target(service, self.address, hc)


@contextlib.contextmanager
def http_backends(count: int, base: str = "127.18.0.1") -> Iterator[list[HttpBackend]]:
    first = ipaddress.IPv4Address(base)
    backends = [HttpBackend(str(first + i)).start() for i in range(count)]
    try:
        yield backends
    finally:
        for b in backends:
            b.stop()


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def tcp_target(address: str, port: int, service: str = "web", **check: object) -> Target:
    hc = HealthCheck(tcp=TcpCheck(port=port), **check)  # type: ignore[arg-type]
    return Target(service, ipaddress.IPv4Address(address), hc)
