"""Hundreds of backends on one loop: every probe slot kept, failures still seen on time."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glb_agent.health import Checker, HealthChange
from glb_agent.health.target import Key
from tests.health.support import free_port, tcp_target

ROOT = Path(__file__).resolve().parents[2]
COUNT, FIRST = 300, "127.19.0.1"


@pytest.mark.slow
def test_300_backends_keep_their_interval() -> None:
    port = free_port(FIRST)
    proc = subprocess.Popen([sys.executable, "-m", "tests.health.listeners", FIRST, str(COUNT), str(port)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        base = ipaddress.IPv4Address(FIRST)
        # 0.3 s (the pre-BFD default), fall 3: what one loop sustains for 300 backends on a
        # loaded 2-core CI box; at the 0.1 s default it falls behind here (docs/health.md).
        targets = [tcp_target(str(base + i), port, interval=0.3, timeout=0.25) for i in range(COUNT)]
        victims = list(range(0, COUNT, 10))
        down_at: dict[Key, float] = {}

        def on_change(view: dict[Key, bool], changes: tuple[HealthChange, ...]) -> None:
            for c in changes:
                if not c.healthy:
                    down_at[(c.service, c.address)] = time.monotonic()

        async def scenario() -> tuple[Checker, float, float]:
            async with Checker(targets, on_change=on_change) as checker:
                await asyncio.sleep(3.0)
                steady = checker.stats.probes
                proc.stdin.write("close " + " ".join(map(str, victims)) + "\n")
                proc.stdin.flush()
                assert await asyncio.to_thread(proc.stdout.readline) == "closed\n"
                closed = time.monotonic()
                async with asyncio.timeout(5):
                    while len(down_at) < len(victims):
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
                return checker, steady, closed

        checker, steady, closed = asyncio.run(scenario())
        stats = checker.stats
        # 3 s at 0.3 s: each backend has had 9 or 10 slots (random first phase in [0, 0.3)).
        assert steady >= COUNT * 9, f"only {steady} probes in 3 s for {COUNT} backends"
        # A late slot is skipped, not queued; on a loaded 2-core CI box some are. What must not
        # happen is the checker falling behind wholesale (then steady/overruns above fail too).
        assert stats.late <= stats.probes * 0.25, f"{stats.late} of {stats.probes} slots late"
        assert stats.overruns == 0
        worst = max(down_at.values()) - closed
        view = checker.view()
        assert {k for k, ok in view.items() if not ok} == {targets[i].key for i in victims}
        print(f"\n{COUNT} backends: {stats.probes} probes, {stats.late} late slots, max lag "
              f"{stats.max_lag * 1000:.1f} ms; {len(victims)} closed -> all reported in {worst:.2f} s")
        assert worst <= 3 * 0.3 + 0.25 + 0.5
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
