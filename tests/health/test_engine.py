"""The probe engine against real sockets: black holes time out, results stay in launch
order, in-flight probes are bounded and a starved loop skips slots instead of bursting.

A black hole is an nftables rule dropping the SYNs in a namespace the test makes (so the
connect gets no answer at all, like a dead host behind a switch); deleting the rule turns
it into a refusing backend (RST) at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterator

import pytest

from glb_agent.health import Checker, HealthChange, ProbeResult, check_once
from glb_agent.health.target import Key, Target
from tests.health.nsthread import run_in_netns
from tests.health.support import free_port, tcp_target
from tests.support.netns import Lab, can_run, sh

PORT = 9  # nothing listens: without the drop rule every SYN is answered by a RST
BLACK_HOLE = f"add table inet bh\nadd chain inet bh out {{ type filter hook output priority 0; }}\n" \
             f"add rule inet bh out tcp dport {PORT} drop\n"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A namespace whose loopback drops every SYN to port 9; yields its name."""
    reason = can_run()
    if reason:
        pytest.skip(reason)
    with Lab() as lab:
        ns = lab.ns("hcbh")
        sh("nft", "-f", "-", ns=ns, input=BLACK_HOLE)
        yield ns


def _targets(count: int, **check: object) -> list[Target]:
    base = ipaddress.IPv4Address("127.0.0.1")
    return [tcp_target(str(base + i), PORT, **check) for i in range(count)]


@pytest.mark.netns
def test_black_holed_connect_fails_at_its_timeout(black_hole: str) -> None:
    (target,) = _targets(1, interval=0.2, timeout=0.2)

    def once() -> tuple[float, tuple[ProbeResult, ...]]:
        start = time.monotonic()
        results = asyncio.run(check_once([target]))[target.key]
        return time.monotonic() - start, results

    took, (result,) = run_in_netns(black_hole, once)
    assert not result.ok and result.detail == f"connect {target.address}:{PORT}: timeout", result
    assert 0.19 <= result.seconds <= 0.3 and 0.19 <= took <= 0.4, (result, took)


@pytest.mark.netns
def test_black_hole_fails_once_per_slot_and_results_keep_launch_order(black_hole: str) -> None:
    """Defaults (0.1 s / 0.2 s / fall 3): every probe times out, but they overlap, so the
    backends go down within 3 slots + one timeout. Then the drop rule goes: new probes are
    refused at once while older ones are still waiting for their timeout, and the state
    machine must still see every timeout before any refusal."""
    targets = _targets(20)
    seen: dict[Key, list[str]] = {t.key: [] for t in targets}

    async def scenario() -> tuple[float, int, int, Checker]:
        down = asyncio.Event()

        def on_change(view: dict[Key, bool], changes: tuple[HealthChange, ...]) -> None:
            if not any(view.values()):
                down.set()

        checker = Checker(targets, on_change=on_change)
        observe = checker._observe

        def recording(target: Target, results: tuple[ProbeResult, ...]) -> None:
            seen[target.key].append(results[0].detail.rsplit(": ", 1)[1])
            observe(target, results)

        checker._observe = recording  # type: ignore[method-assign]
        start = time.monotonic()
        async with checker:
            async with asyncio.timeout(3):
                await down.wait()
            took = time.monotonic() - start
            most = max(len(b.pending) for b in checker._backends.values())
            limit = min(b.limit for b in checker._backends.values())
            await asyncio.to_thread(sh, "nft", "delete", "table", "inet", "bh", ns=black_hole)
            refused = {t.key: len(seen[t.key]) for t in targets}
            async with asyncio.timeout(3):
                while any(seen[k][-1] != "connection refused" for k in seen):
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert all(len(seen[k]) > refused[k] for k in seen)
        return took, most, limit, checker

    took, most, limit, checker = run_in_netns(black_hole, lambda: asyncio.run(scenario()))
    print(f"\n20 black-holed backends down after {took:.3f} s, then up to {most} probes in flight "
          f"per backend (limit {limit}); {checker.stats.late} late slots")
    # first slot within one interval, 3 failures: the third slot's probe times out at 0.3 + 0.2
    assert took <= 0.1 + 0.2 + 0.2 + 0.25, took
    assert 2 <= most <= limit == 4
    for key, details in seen.items():
        first_refusal = details.index("connection refused")
        assert set(details[:first_refusal]) == {"timeout"}, (key, details)
        assert set(details[first_refusal:]) == {"connection refused"}, (key, details)


def test_a_starved_loop_skips_slots_instead_of_bursting() -> None:
    """The loop is blocked for 7 intervals: each backend then starts two probes (the late slot
    and the skip-ahead slot), not seven, and the skipped slots are counted as overruns."""
    port = free_port("127.18.12.1")
    targets = [tcp_target(f"127.18.12.{i + 1}", port, interval=0.05, timeout=0.1) for i in range(20)]

    async def scenario() -> tuple[dict[Key, int], dict[Key, int], int]:
        async with Checker(targets) as checker:
            await asyncio.sleep(0.3)
            before, over = dict(checker.stats.per_backend), checker.stats.overruns
            time.sleep(0.35)  # the loop is starved: no slot can start
            await asyncio.sleep(0.02)  # the late slots run now; the next regular one is 0.05 s away
            return before, dict(checker.stats.per_backend), checker.stats.overruns - over

    before, after, overruns = asyncio.run(scenario())
    burst = {k: after[k] - before[k] for k in before}
    assert all(1 <= n <= 2 for n in burst.values()), burst
    assert overruns >= len(targets), overruns
