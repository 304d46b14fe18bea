"""Hundreds of backends on one loop at the default 0.1 s: every probe slot kept, failures
still seen within the 0.5 s goal (plus slack for a loaded 2-core CI host)."""

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
        # the defaults (0.1 s / 0.2 s / fall 3): 3,000 connects a second on one loop
        targets = [tcp_target(str(base + i), port) for i in range(COUNT)]
        interval, timeout, fall = 0.1, 0.2, 3
        victims = list(range(0, COUNT, 10))
        down_at: dict[Key, float] = {}

        def on_change(view: dict[Key, bool], changes: tuple[HealthChange, ...]) -> None:
            for c in changes:
                if not c.healthy:
                    down_at[(c.service, c.address)] = time.monotonic()

        async def scenario() -> tuple[Checker, int, float, float]:
            async with Checker(targets, on_change=on_change) as checker:
                await asyncio.sleep(0.5)  # every backend past its random first phase
                start, probes0 = time.monotonic(), checker.stats.probes
                await asyncio.sleep(3.0)
                due = round(COUNT * (time.monotonic() - start) / interval)
                steady = checker.stats.probes - probes0
                assert all(checker.stats.last_results[t.key][0].ok for t in targets)
                proc.stdin.write("close " + " ".join(map(str, victims)) + "\n")
                proc.stdin.flush()
                assert await asyncio.to_thread(proc.stdout.readline) == "closed\n"
                closed = time.monotonic()
                async with asyncio.timeout(5):
                    while len(down_at) < len(victims):
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
                return checker, due, steady, closed

        checker, due, steady, closed = asyncio.run(scenario())
        stats = checker.stats
        # A late slot is skipped, not queued; on a loaded 2-core CI box a few are. What must not
        # happen is the checker falling behind wholesale (the old task-per-backend checker
        # kept 22-67 % of its slots here at 0.1 s).
        assert steady >= due * 0.95, f"only {steady} of {due} due probes in 3 s for {COUNT} backends"
        assert stats.late <= stats.probes * 0.1, f"{stats.late} of {stats.probes} slots late"
        assert stats.overruns <= stats.probes * 0.01, f"{stats.overruns} overruns"
        worst = max(down_at.values()) - closed
        view = checker.view()
        assert {k for k, ok in view.items() if not ok} == {targets[i].key for i in victims}
        print(f"\n{COUNT} backends at {interval} s: {steady} of {due} due probes in 3 s, "
              f"{stats.late} late slots, max lag {stats.max_lag * 1000:.1f} ms; "
              f"{len(victims)} closed -> all reported in {worst:.2f} s")
        assert worst <= fall * interval + timeout + 0.3
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
