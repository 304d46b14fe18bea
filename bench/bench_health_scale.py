"""How many backends one director's health checker keeps on time, with N directors on one host.

Each "director" is its own process running ``glb_agent.health.Checker`` over ``--backends``
TCP-checked backends at ``--interval`` (default: the config default, 0.1 s). The backends
are loopback addresses with nothing listening, so the kernel answers every SYN with a RST
and no user-space server competes with the checkers for the CPU: what is measured is the
checkers' own cost. Reported per director: probes completed vs slots due, late slots,
overruns, the worst lag, the process's CPU time (user + system, which includes the
kernel's connect/RST work) per completed probe, and how long the process waited for a CPU
while runnable (``/proc/self/schedstat``): on a shared host a lag of hundreds of ms with
that wait as large is the machine, not the checker.

    flock /tmp/glb-bench.lock .venv/bin/python -m bench.bench_health_scale --directors 4 --backends 300

``--check http`` probes HTTP instead: one more process holds a listener on every backend
address and answers each request with a bare-socket "200 OK" (its own CPU is not counted
in the directors' figures, but it does compete with them for the host's cores).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import multiprocessing
import resource
import selectors
import socket
import time

from glb_agent.config.model import HealthCheck, HttpCheck, TcpCheck
from glb_agent.health import Checker
from glb_agent.health.target import Target

FIRST = ipaddress.IPv4Address("127.21.0.1")
PORT = 9  # discard: nothing listens on loopback here, so every probe is answered by a RST
HTTP_PORT = 18080
_OK = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"


def _responder(backends: int, ready: multiprocessing.Event) -> None:  # type: ignore[valid-type]
    """Answer every HTTP request on every backend address with 200, as cheaply as Python can."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a listener per backend + connections
    sel = selectors.DefaultSelector()
    for i in range(backends):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((str(FIRST + i), HTTP_PORT))
        srv.listen(1024)
        srv.setblocking(False)
        sel.register(srv, selectors.EVENT_READ, True)
    ready.set()  # type: ignore[attr-defined]
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data:  # a listener
                while True:
                    try:
                        conn, _ = sock.accept()
                    except (BlockingIOError, ConnectionError):
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, False)
                continue
            try:
                if sock.recv(4096):
                    sock.send(_OK)
            except OSError:
                pass
            sel.unregister(sock)
            sock.close()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _runq_wait() -> float:
    """Seconds this process has been runnable but not running (all threads are one here)."""
    with open("/proc/self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def _one(index: int, backends: int, interval: float, seconds: float, check: str,
         out: multiprocessing.Queue) -> None:
    logging.disable(logging.WARNING)  # every backend is "down" (RST): no event lines
    timeout = min(0.2, interval * 4)
    hc = (HealthCheck(tcp=TcpCheck(port=PORT), interval=interval, timeout=timeout) if check == "tcp" else
          HealthCheck(http=HttpCheck(port=HTTP_PORT, path="/"), interval=interval, timeout=timeout))
    targets = [Target(f"svc{index}", FIRST + i, hc) for i in range(backends)]

    async def run() -> dict:
        async with Checker(targets) as checker:
            await asyncio.sleep(1.0)  # every backend past its random first phase
            start, probes0 = time.monotonic(), checker.stats.probes
            late0, over0 = checker.stats.late, checker.stats.overruns
            checker.stats.max_lag = 0.0
            cpu0, wait0 = _cpu(), _runq_wait()
            await asyncio.sleep(seconds)
            took, cpu, wait = time.monotonic() - start, _cpu() - cpu0, _runq_wait() - wait0
            s = checker.stats
            probes = s.probes - probes0
            ok = sum(all(r.ok for r in res) for res in s.last_results.values())
            return {"director": index, "due": round(backends * took / interval), "ok": ok,
                    "probes": probes, "late": s.late - late0, "overruns": s.overruns - over0,
                    "max_lag_ms": round(s.max_lag * 1000, 1),
                    "cpu_us_per_probe": round(cpu / max(1, probes) * 1e6, 1),
                    "runq_wait_ms": round(wait * 1000)}

    out.put(asyncio.run(run()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--directors", type=int, default=4)
    ap.add_argument("--backends", type=int, default=300)
    ap.add_argument("--interval", type=float, default=HealthCheck().interval)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--check", choices=("tcp", "http"), default="tcp",
                    help="tcp: connects answered by the kernel's RST; http: a 200 from a responder")
    args = ap.parse_args()
    responder = None
    if args.check == "http":
        ready = multiprocessing.Event()
        responder = multiprocessing.Process(target=_responder, args=(args.backends, ready), daemon=True)
        responder.start()
        if not ready.wait(30):
            raise SystemExit("the HTTP responder did not start")
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_one, args=(i, args.backends, args.interval, args.seconds,
                                                         args.check, out))
             for i in range(args.directors)]
    for p in procs:
        p.start()
    rows = sorted((out.get(timeout=120) for _ in procs), key=lambda r: r["director"])
    for p in procs:
        p.join(timeout=30)
    if responder is not None:
        responder.terminate()
        responder.join(timeout=10)
    for r in rows:
        r["kept"] = round(r["probes"] / max(1, r["due"]), 3)
        print(json.dumps(r))
    kept = min(r["kept"] for r in rows)
    lag = max(r["max_lag_ms"] for r in rows)
    wait = max(r["runq_wait_ms"] for r in rows)
    cpu = sum(r["cpu_us_per_probe"] * r["probes"] for r in rows) / max(1, sum(r["probes"] for r in rows))
    print(f"{args.check}: {args.directors} directors x {args.backends} backends at {args.interval} s: "
          f"worst director completed {kept:.1%} of its due probes over {args.seconds:.0f} s, "
          f"worst lag {lag:.0f} ms, {cpu:.0f} us CPU per probe, "
          f"waited for a CPU (runnable) {wait} ms in total at most")


if __name__ == "__main__":
    main()
