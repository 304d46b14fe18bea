"""What every probe kind returns, and the HTTP check's request and status line.

The probes themselves run in ``engine.py`` as callbacks on one epoll set and one timer heap
(no thread, task or coroutine per probe: at ten probes a second per backend that is the
hot path). A probe never raises for a backend problem; it returns a ``ProbeResult`` whose
``detail`` says why it failed (it ends up in logs and the CLI).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

MAX_STATUS_LINE = 1024  # bytes: a longer first line is not an HTTP status line
USER_AGENT = "glb-agent-health/1"


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome: ``ok``, a human-readable reason, and how long it took."""

    kind: str
    ok: bool
    detail: str
    seconds: float


def http_request(address: ipaddress.IPv4Address, port: int, path: str) -> bytes:
    """The HTTP check's request: HTTP/1.0 with ``Connection: close``."""
    return (f"GET {path} HTTP/1.0\r\nHost: {address}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Connection: close\r\nAccept: */*\r\n\r\n").encode("ascii")


def status_of(line: bytes) -> int:
    """The status code of an HTTP/1.x status line; ValueError if it is not one."""
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {line[:80]!r}")
    return int(parts[1])
