"""Keep N long-lived TCP connections busy through the VIP and record every failure.

Run inside the client namespace. Each connection is one HTTP/1.1 keep-alive session that
POSTs a random body to ``/echo`` every ``--interval`` seconds and checks the echo byte for
byte, so a reset, a stall or corrupted data is seen within one interval. Connections bind to
different client source addresses so the director's source hash spreads them over proxies.

The report (JSON, rewritten atomically every ``--report-every`` seconds and at exit) has, per
connection: the proxy that served it, exchanges done, the longest gap between successful
exchanges, and the error that broke it, if any. Stop with SIGTERM/SIGINT or ``--duration``.

With ``--requests-every S`` it also opens a new connection every S seconds (one GET, then
close), from ``--request-sources`` in turn, so a fleet change is also seen by clients that
arrive during it; the report's ``requests`` has how many succeeded and failed, the slowest,
and the first errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field

from glb_agent.util.files import write_atomic


@dataclass
class ConnState:
    source: str
    proxy: str | None = None
    exchanges: int = 0
    last_ok: float = field(default_factory=time.monotonic)
    max_gap: float = 0.0
    error: str | None = None
    closed: bool = False  # ended on purpose (its proxy is being retired), not broken
    failed_at: float | None = None  # monotonic time of the failure


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                    method: str, path: str, body: bytes) -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n").encode()
    writer.write(head + body)
    await writer.drain()
    status = await reader.readline()
    if not status.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"bad status {status[:40]!r}")
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return await reader.readexactly(length)


def _retired(close_file: str | None) -> set[str]:
    try:
        with open(close_file or "") as fh:
            return set(fh.read().split())
    except OSError:
        return set()


async def keep(state: ConnState, vip: str, port: int, interval: float, timeout: float,
               stop: asyncio.Event, close_file: str | None = None) -> None:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(vip, port, local_addr=(state.source, 0)), timeout)
        hello = json.loads(await asyncio.wait_for(_exchange(reader, writer, vip, "GET", "/", b""), timeout))
        state.proxy = hello["proxy"]
        state.last_ok = time.monotonic()
        while not stop.is_set():
            if state.proxy in _retired(close_file):
                state.closed = True
                break
            body = os.urandom(64)
            echoed = await asyncio.wait_for(_exchange(reader, writer, vip, "POST", "/echo", body), timeout)
            if echoed != body:
                raise ConnectionError("echo corrupted")
            now = time.monotonic()
            state.max_gap = max(state.max_gap, now - state.last_ok)
            state.last_ok = now
            state.exchanges += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        writer.close()
    except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
        state.error = f"{type(exc).__name__}: {exc}"[:200]
        state.failed_at = time.monotonic()


@dataclass
class Requests:
    """New connections opened during the run (``--requests-every``)."""

    ok: int = 0
    failed: int = 0
    slowest: float = 0.0
    errors: list[str] = field(default_factory=list)  # the first few, with when they happened

    def report(self) -> dict:
        return {"ok": self.ok, "failed": self.failed, "slowest": round(self.slowest, 3),
                "errors": self.errors[:20]}


async def _one_request(vip: str, port: int, source: str, timeout: float, out: Requests,
                       started: float) -> None:
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(vip, port, local_addr=(source, 0)),
                                                timeout)
        try:
            body = await asyncio.wait_for(_exchange(reader, writer, vip, "GET", "/", b""), timeout)
            if "proxy" not in json.loads(body):  # a real answer from a proxy
                raise ValueError(f"unexpected answer {body[:60]!r}")
        finally:
            writer.close()
        out.ok += 1
        out.slowest = max(out.slowest, time.monotonic() - t0)
    except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
        out.failed += 1
        out.errors.append(f"t={t0 - started:.2f}s {source}: {type(exc).__name__}: {exc}"[:200])


async def requester(vip: str, port: int, sources: list[str], every: float, timeout: float,
                    stop: asyncio.Event, out: Requests, started: float) -> None:
    """A new connection every ``every`` seconds until stopped; each runs on its own so a slow
    one does not hold the next back."""
    pending: set[asyncio.Task] = set()
    i = 0
    while not stop.is_set():
        task = asyncio.create_task(_one_request(vip, port, sources[i % len(sources)], timeout, out, started))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    if pending:
        await asyncio.gather(*pending)


def _write_report(path: str, states: list[ConnState], started: float,
                  requests: Requests | None = None) -> None:
    now = time.monotonic()
    conns = []
    for s in states:
        d = asdict(s)
        d["current_gap"] = round(now - s.last_ok, 3) if s.error is None and not s.closed else None
        del d["last_ok"]
        conns.append(d)
    report = {
        "elapsed": round(now - started, 3),
        "alive": sum(1 for s in states if s.error is None and s.proxy is not None and not s.closed),
        "broken": sum(1 for s in states if s.error is not None),
        "closed": sum(1 for s in states if s.closed),
        "connections": conns,
    }
    if requests is not None:
        report["requests"] = requests.report()
    write_atomic(path, json.dumps(report))


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sources = args.sources.split(",")
    states = [ConnState(sources[i % len(sources)]) for i in range(args.count)]
    started = time.monotonic()
    tasks = []
    for state in states:
        tasks.append(asyncio.create_task(keep(state, args.vip, args.port, args.interval, args.timeout, stop,
                                               args.close_file)))
        await asyncio.sleep(0.005)  # do not SYN-flood the lab
    requests = None
    if args.requests_every:
        requests = Requests()
        tasks.append(asyncio.create_task(requester(
            args.vip, args.port, (args.request_sources or args.sources).split(","), args.requests_every,
            args.timeout, stop, requests, started)))
    deadline = started + args.duration
    while not stop.is_set() and time.monotonic() < deadline:
        _write_report(args.report, states, started, requests)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), args.report_every)
    stop.set()
    await asyncio.gather(*tasks)
    _write_report(args.report, states, started, requests)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="keep long-lived TCP connections through a VIP")
    ap.add_argument("--vip", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--sources", required=True, help="comma-separated client source addresses")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=600.0, help="hard stop, seconds")
    ap.add_argument("--report", required=True)
    ap.add_argument("--report-every", type=float, default=0.5)
    ap.add_argument("--close-file", help="file listing proxy names whose connections should end cleanly")
    ap.add_argument("--requests-every", type=float, default=0.0, metavar="SECONDS",
                    help="also open a new connection (one GET) this often; 0: never")
    ap.add_argument("--request-sources", help="their source addresses, in turn (default: --sources)")
    asyncio.run(run(ap.parse_args(argv)))


if __name__ == "__main__":
    main()
