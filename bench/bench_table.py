"""Forwarding-table build time: the C builder against numpy on the same machine, same run.

Upstream's ``glb-director-cli build-config`` needs 5.7 s for 4 tables x 256 backends on
the CI hosts (PLATFORM.md); the targets are <= 0.5 s for that and <= 2 s for one table of
4096 backends. The numpy figure is printed alongside so the ratio stays meaningful on a
busy or different host. Run: ``.venv/bin/python -m bench.bench_table [--runs N]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import time
from collections.abc import Callable

from glb_agent.table.rendezvous import build_all, have_c_extension
from glb_agent.table.spec import Backend, Bind, TableSpec

BASE = int(ipaddress.IPv4Address("198.18.0.0"))


def make_specs(tables: int, backends: int) -> list[TableSpec]:
    bind = Bind(ipaddress.ip_network("203.0.113.80/32"), "tcp", 80, 80)
    return [
        TableSpec(
            name=f"svc{t}",
            hash_key=bytes([t]) * 16,
            seed=bytes([t + 1] * 8 + [0x5A] * 8),
            binds=(bind,),
            backends=tuple(Backend(ipaddress.IPv4Address(BASE + t * 8192 + i)) for i in range(backends)),
        )
        for t in range(tables)
    ]


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of the C builder per case")
    parser.add_argument("--baseline-runs", type=int, default=1, help="runs of numpy per case (slow)")
    args = parser.parse_args()
    if not have_c_extension():
        raise SystemExit("the C extension is not built: run 'pip install -e .' first")

    print(f"{'case':<18} {'C (s)':>8} {'numpy (s)':>10} {'speed-up':>9}")
    for label, tables, backends in (("4 x 256 backends", 4, 256), ("1 x 4096 backends", 1, 4096)):
        specs = make_specs(tables, backends)
        build_all(specs, impl="c")  # warm-up: thread pool, page faults
        fast = median_seconds(lambda s=specs: build_all(s, impl="c"), args.runs)
        slow = median_seconds(lambda s=specs: build_all(s, impl="numpy"), args.baseline_runs)
        print(f"{label:<18} {fast:>8.3f} {slow:>10.2f} {slow / fast:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
