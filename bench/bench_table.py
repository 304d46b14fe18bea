"""Forwarding-table build time: the C builder against numpy on the same machine, same run.

Upstream's ``glb-director-cli build-config`` needs 5.7 s for 4 tables x 256 backends on
the CI hosts (PLATFORM.md); the targets are <= 0.2 s for that with K=4 candidate rows and
<= 2 s for one table of 4096 backends. Every case is built three ways in the same run:
upstream semantics (K=2, today's two-column rows), ``candidates`` with K=4 (the default)
and numpy (K=4, the fallback builder), so the K=4/K=2 ratio and the speed-up over numpy
stay meaningful on a busy or different host. Rounds interleave the two C builds so load
from other processes hits both alike. Run: ``.venv/bin/python -m bench.bench_table``.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import statistics
import time
from collections.abc import Callable

from glb_agent.table.rendezvous import build_all, have_c_extension
from glb_agent.table.spec import DEFAULT_CANDIDATES, Backend, Bind, TableSpec

BASE = int(ipaddress.IPv4Address("198.18.0.0"))


def make_specs(tables: int, backends: int, semantics: str = "candidates",
               candidates: int = DEFAULT_CANDIDATES) -> list[TableSpec]:
    bind = Bind(ipaddress.ip_network("203.0.113.80/32"), "tcp", 80, 80)
    return [
        TableSpec(
            name=f"svc{t}",
            hash_key=bytes([t]) * 16,
            seed=bytes([t + 1] * 8 + [0x5A] * 8),
            binds=(bind,),
            backends=tuple(Backend(ipaddress.IPv4Address(BASE + t * 8192 + i)) for i in range(backends)),
            semantics=semantics,  # type: ignore[arg-type]
            candidates=candidates,
        )
        for t in range(tables)
    ]


def time_once(fn: Callable[[], object], cpu: list[float] | None = None) -> float:
    """Wall seconds of one call; its CPU seconds (all threads) are appended to ``cpu``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    if cpu is not None:
        cpu.append(time.process_time() - start_cpu)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved rounds of the C builders per case")
    parser.add_argument("--baseline-runs", type=int, default=1, help="runs of numpy per case (slow)")
    args = parser.parse_args()
    if not have_c_extension():
        raise SystemExit("the C extension is not built: run 'pip install -e .' first")

    # CPU seconds are printed too: on a machine shared with other work they move far less
    # than wall time (the build runs on every core; wall ~ CPU / cores on a quiet host).
    print(f"{'case':<18} {'K=2 up (s)':>10} {'K=4 (s)':>8} {'K=4/K=2':>8} {'K=2 cpu':>8} {'K=4 cpu':>8} "
          f"{'numpy K=4 (s)':>14} {'speed-up':>9}")
    for label, tables, backends in (("4 x 256 backends", 4, 256), ("1 x 4096 backends", 1, 4096)):
        k4 = make_specs(tables, backends)
        k2 = [dataclasses.replace(s, semantics="upstream", candidates=2) for s in k4]
        build_all(k4, impl="c")  # warm-up: thread pool, page faults
        build_all(k2, impl="c")
        t2: list[float] = []
        t4: list[float] = []
        c2: list[float] = []
        c4: list[float] = []
        for _ in range(args.runs):
            t2.append(time_once(lambda s=k2: build_all(s, impl="c"), c2))
            t4.append(time_once(lambda s=k4: build_all(s, impl="c"), c4))
        fast2, fast4 = statistics.median(t2), statistics.median(t4)
        cpu2, cpu4 = statistics.median(c2), statistics.median(c4)
        slow = statistics.median(
            time_once(lambda s=k4: build_all(s, impl="numpy")) for _ in range(args.baseline_runs))
        print(f"{label:<18} {fast2:>10.3f} {fast4:>8.3f} {fast4 / fast2:>7.2f}x {cpu2:>8.3f} {cpu4:>8.3f} "
              f"{slow:>14.2f} {slow / fast4:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
