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
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import multiprocessing
import resource
import time

from glb_agent.config.model import HealthCheck, TcpCheck
from glb_agent.health import Checker
from glb_agent.health.target import Target

FIRST = ipaddress.IPv4Address("127.21.0.1")
PORT = 9  # discard: nothing listens on loopback here, so every probe is answered by a RST


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _runq_wait() -> float:
    """Seconds this process has been runnable but not running (all threads are one here)."""
    with open("/proc/self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def _one(index: int, backends: int, interval: float, seconds: float, out: multiprocessing.Queue) -> None:
    logging.disable(logging.WARNING)  # every backend is "down" (RST): no event lines
    hc = HealthCheck(tcp=TcpCheck(port=PORT), interval=interval, timeout=min(0.2, interval * 4))
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
            return {"director": index, "due": round(backends * took / interval),
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
    args = ap.parse_args()
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_one, args=(i, args.backends, args.interval, args.seconds, out))
             for i in range(args.directors)]
    for p in procs:
        p.start()
    rows = sorted((out.get(timeout=120) for _ in procs), key=lambda r: r["director"])
    for p in procs:
        p.join(timeout=30)
    for r in rows:
        r["kept"] = round(r["probes"] / max(1, r["due"]), 3)
        print(json.dumps(r))
    kept = min(r["kept"] for r in rows)
    lag = max(r["max_lag_ms"] for r in rows)
    wait = max(r["runq_wait_ms"] for r in rows)
    cpu = sum(r["cpu_us_per_probe"] * r["probes"] for r in rows) / max(1, sum(r["probes"] for r in rows))
    print(f"{args.directors} directors x {args.backends} backends at {args.interval} s: worst director "
          f"completed {kept:.1%} of its due probes over {args.seconds:.0f} s, worst lag {lag:.0f} ms, "
          f"{cpu:.0f} us CPU per probe, "
          f"waited for a CPU (runnable) {wait} ms in total at most")


if __name__ == "__main__":
    main()
