"""HTTP and TCP checks against real sockets on loopback, run by the probe engine the way the
checker runs them (``check_once``): every failure mode has a reason."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time

from glb_agent.config.model import HealthCheck, HttpCheck
from glb_agent.health import Target, check_once
from glb_agent.health.probes import ProbeResult
from tests.health.support import HttpBackend, free_port, tcp_target

LO = ipaddress.IPv4Address("127.18.1.1")


async def http_probe(address: ipaddress.IPv4Address, port: int, path: str, expect: int,
                     timeout: float) -> ProbeResult:
    """One HTTP check through the probe engine."""
    target = Target("web", address, HealthCheck(http=HttpCheck(port=port, path=path, status=expect),
                                                interval=timeout, timeout=timeout))
    (result,) = (await check_once([target]))[target.key]
    return result


def test_http_probe_checks_the_status() -> None:
    backend = HttpBackend(str(LO)).start()
    try:
        ok = asyncio.run(http_probe(LO, backend.port, "/health", 200, 1.0))
        assert ok.ok and "status 200" in ok.detail
        backend.set_status(503)
        bad = asyncio.run(http_probe(LO, backend.port, "/health", 200, 1.0))
        assert not bad.ok and "status 503, expected 200" in bad.detail
        assert asyncio.run(http_probe(LO, backend.port, "/health", 503, 1.0)).ok
    finally:
        backend.stop()
    refused = asyncio.run(http_probe(LO, backend.port, "/health", 200, 1.0))
    assert not refused.ok and "refused" in refused.detail


def _silent_listener(answer: bytes | None, *more: bytes
                     ) -> tuple[socket.socket, threading.Thread, list[socket.socket]]:
    """Accepts connections; sends ``answer`` (then each of ``more`` 50 ms apart) and closes,
    or (None) never says anything."""
    srv = socket.socket()
    srv.bind((str(LO), 0))
    srv.listen(8)
    conns: list[socket.socket] = []

    def serve() -> None:
        try:
            while True:
                conn, _ = srv.accept()
                conns.append(conn)
                if answer is not None:
                    conn.recv(4096)
                    conn.sendall(answer)
                    for part in more:
                        time.sleep(0.05)
                        conn.sendall(part)
                    conn.close()
        except OSError:
            return

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t, conns


def test_http_probe_times_out_on_a_silent_server() -> None:
    srv, t, conns = _silent_listener(None)
    try:
        res = asyncio.run(http_probe(LO, srv.getsockname()[1], "/", 200, 0.2))
        assert not res.ok and "timeout" in res.detail
        assert 0.15 < res.seconds < 0.6
    finally:
        srv.shutdown(socket.SHUT_RDWR)
        srv.close()
        for c in conns:
            c.close()
        t.join(timeout=2)


def test_http_probe_rejects_non_http_answers() -> None:
    for answer, reason in ((b"SSH-2.0-OpenSSH\r\n", "not an HTTP status line"),
                           (b"", "connection closed before a status line"),
                           (b"HTTP/1.1 200 " + b"x" * 2000 + b"\r\n", "status line too long"),
                           (b"HTTP/1.1 200 " + b"x" * 1100, "status line too long")):
        srv, t, _ = _silent_listener(answer)
        try:
            res = asyncio.run(http_probe(LO, srv.getsockname()[1], "/", 200, 1.0))
            assert not res.ok and reason in res.detail, res
        finally:
            srv.shutdown(socket.SHUT_RDWR)
            srv.close()
            t.join(timeout=2)


def test_http_status_line_in_pieces_and_the_body_is_never_read() -> None:
    """The status line may arrive in several segments; a large body behind it is not read
    (the check is done at the line's end, and the connection is reset)."""
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"y" * 65536
    for parts in ((b"HTTP/1.1 2", b"00 OK\r\n"), (body, b"y" * 65536)):
        srv, t, _ = _silent_listener(*parts)
        try:
            start = time.monotonic()
            res = asyncio.run(http_probe(LO, srv.getsockname()[1], "/", 200, 1.0))
            assert res.ok and res.detail.endswith(": status 200"), res
            assert time.monotonic() - start < 0.5
        finally:
            srv.shutdown(socket.SHUT_RDWR)
            srv.close()
            t.join(timeout=2)


def _tcp(port: int, timeout: float = 1.0) -> ProbeResult:
    """One TCP check through the probe engine, the way the checker runs it."""
    target = tcp_target(str(LO), port, interval=timeout, timeout=timeout)
    (result,) = asyncio.run(check_once([target]))[target.key]
    return result


def test_tcp_probe() -> None:
    srv = socket.socket()
    srv.bind((str(LO), 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    try:
        ok = _tcp(port)
        assert ok.ok and ok.detail == f"connected to {LO}:{port}", ok
        # the probe's connection is closed with a RST (SO_LINGER 0): the backend's accept
        # sees a connection that is already reset, and neither side keeps a TIME_WAIT
        conn, _ = srv.accept()
        with conn:
            try:
                got = conn.recv(1)
            except ConnectionResetError:
                got = None
            assert got is None, got
    finally:
        srv.close()
    res = _tcp(port)
    assert not res.ok and res.detail == f"connect {LO}:{port}: connection refused", res
    closed = free_port(str(LO))
    assert not _tcp(closed).ok
