"""The HTTP probe on asyncio streams, and the result every probe kind returns.

The probe is a coroutine bounded by its own timeout, so a black-holed backend costs one
pending socket for ``timeout`` seconds and nothing else -- no thread per probe, no
third-party HTTP client. (TCP connects are plain callbacks in ``engine.py``: the hot path
at ten probes a second per backend.) A probe never raises for a backend problem; it
returns a ``ProbeResult`` whose ``detail`` says why it failed (it ends up in logs and the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import time
from dataclasses import dataclass

_MAX_STATUS_LINE = 1024
USER_AGENT = "glb-agent-health/1"


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome: ``ok``, a human-readable reason, and how long it took."""

    kind: str
    ok: bool
    detail: str
    seconds: float


def _failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # asyncio's wrapped message hides the reason
    return type(exc).__name__ if not str(exc) else str(exc)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 0.5)


def _status_of(line: bytes) -> int:
    """The status code of an HTTP/1.x status line; ValueError if it is not one."""
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP status line: {line[:80]!r}")
    return int(parts[1])


async def http_probe(address: ipaddress.IPv4Address, port: int, path: str, expect: int,
                     timeout: float) -> ProbeResult:
    """Healthy when ``GET path`` on ``address:port`` answers status ``expect`` in ``timeout``.

    HTTP/1.0 with ``Connection: close``: only the status line is read, the body never is,
    so a large or slow body cannot make the probe late.
    """
    start = time.monotonic()
    where = f"http://{address}:{port}{path}"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(str(address), port)
            writer.write(
                f"GET {path} HTTP/1.0\r\nHost: {address}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
                "Connection: close\r\nAccept: */*\r\n\r\n".encode("ascii")
            )
            await writer.drain()
            line = await reader.readuntil(b"\n")
            if len(line) > _MAX_STATUS_LINE:
                raise ValueError("status line too long")
            status = _status_of(line)
    except asyncio.IncompleteReadError:
        return ProbeResult("http", False, f"{where}: connection closed before a status line",
                           time.monotonic() - start)
    except asyncio.LimitOverrunError:
        return ProbeResult("http", False, f"{where}: status line too long", time.monotonic() - start)
    except (OSError, TimeoutError, ValueError) as exc:
        return ProbeResult("http", False, f"{where}: {_failure(exc)}", time.monotonic() - start)
    finally:
        if writer is not None:
            await _close(writer)
    elapsed = time.monotonic() - start
    if status != expect:
        return ProbeResult("http", False, f"{where}: status {status}, expected {expect}", elapsed)
    return ProbeResult("http", True, f"{where}: status {status}", elapsed)
