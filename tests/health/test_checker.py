"""The checker against real HTTP servers: failures, recovery, damping, restarts, latency."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from glb_agent.health import Checker, Damping, HealthChange
from glb_agent.health.target import Key
from tests.health.support import HttpBackend, http_backends


class Recorder:
    """Collects on_change calls; ``wait`` blocks (bounded) until a predicate holds."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[Key, bool], tuple[HealthChange, ...]]] = []
        self._event = asyncio.Event()

    def __call__(self, view: dict[Key, bool], changes: tuple[HealthChange, ...]) -> None:
        self.calls.append((time.monotonic(), dict(view), changes))
        self._event.set()

    async def wait(self, pred: Callable[[dict[Key, bool]], bool], timeout: float) -> float:
        """Monotonic time of the first call (from now on) whose view satisfies ``pred``."""
        seen = len(self.calls)
        async with asyncio.timeout(timeout):
            while True:
                for at, view, _ in self.calls[seen:]:
                    if pred(view):
                        return at
                seen = len(self.calls)
                self._event.clear()
                await self._event.wait()


def key(b: HttpBackend, service: str = "web") -> Key:
    return (service, b.address)


def test_stopped_server_is_reported_within_fall_intervals_and_returns_after_rise(tmp_path: Path) -> None:
    interval, timeout, rise, fall = 0.1, 0.25, 2, 3

    async def scenario() -> None:
        with http_backends(3) as backends:
            rec = Recorder()
            targets = [b.target(interval=interval, timeout=timeout, rise=rise, fall=fall) for b in backends]
            async with Checker(targets, on_change=rec, state_file=tmp_path / "h.json") as checker:
                await asyncio.sleep(0.3)
                assert checker.view() == {key(b): True for b in backends}
                assert rec.calls == []
                victim = backends[1]
                victim.stop()
                stopped = time.monotonic()
                at = await rec.wait(lambda v: not v[key(victim)], fall * interval + timeout + interval + 1.0)
                assert (fall - 1) * interval * 0.9 <= at - stopped <= fall * interval + timeout + interval + 0.3
                _, view, changes = rec.calls[-1]
                assert view == {key(backends[0]): True, key(victim): False, key(backends[2]): True}
                assert [(c.address, c.healthy) for c in changes] == [(victim.address, False)]
                assert "refused" in changes[0].detail
                saved = json.loads((tmp_path / "h.json").read_text())
                assert [b["healthy"] for b in saved["backends"]] == [True, False, True]
                victim.start()
                back = time.monotonic()
                at = await rec.wait(lambda v: v[key(victim)], rise * interval + timeout + interval + 1.0)
                assert (rise - 1) * interval * 0.9 <= at - back <= rise * interval + interval + 0.3
                assert rec.calls[-1][1] == {key(b): True for b in backends}

    asyncio.run(scenario())


def test_failure_to_callback_with_default_settings() -> None:
    """Defaults: interval 0.1 s, timeout 0.2 s, fall 3. Five backends fail at once, at
    random phases of their probe slots; each gives one failure -> callback sample."""

    async def scenario() -> list[float]:
        with http_backends(5, base="127.18.2.1") as backends:
            rec = Recorder()
            async with Checker([b.target() for b in backends], on_change=rec):
                await asyncio.sleep(0.7)
                stopped = {}
                for b in backends:
                    b.stop()  # returns once the listening socket is closed
                    stopped[b.address] = time.monotonic()
                await rec.wait(lambda v: not any(v[key(b)] for b in backends), 3.0)
                return [next(at for at, v, _ in rec.calls if not v[key(b)]) - stopped[b.address]
                        for b in backends]

    delays = asyncio.run(scenario())
    print(f"\nfailure -> callback (refused, defaults): min {min(delays):.3f} s, "
          f"median {statistics.median(delays):.3f} s, max {max(delays):.3f} s")
    # 3 failed probes: the first lands within one interval of the failure, two more follow
    # 0.1 s apart: not before ~2 intervals; the median within the 0.5 s goal (the old 0.3 s
    # default gave 0.58-0.85 s), single samples allowed a late slot on a loaded CI box.
    assert all(0.1 <= d <= 0.8 for d in delays), delays
    assert statistics.median(delays) <= 0.45, delays


def test_hung_server_failure_to_callback_with_default_settings() -> None:
    """A server that accepts but never answers: each probe costs the full 0.2 s timeout, but
    probes keep starting every 0.1 s (they overlap), so fall 3 takes 3 slots + one timeout."""

    async def scenario() -> float:
        with http_backends(1, base="127.18.3.1") as (backend,):
            rec = Recorder()
            async with Checker([backend.target()], on_change=rec):
                await asyncio.sleep(0.5)
                backend.stop()
                hung = _HungListener(str(backend.address), backend.port)
                try:
                    start = time.monotonic()
                    at = await rec.wait(lambda v: not v[key(backend)], 3.0)
                finally:
                    hung.close()
                return at - start

    delay = asyncio.run(scenario())
    print(f"\nfailure -> callback (hung, defaults): {delay:.3f} s")
    assert 0.2 + 0.2 - 0.05 <= delay <= 0.3 + 0.2 + 0.15


class _HungListener:
    def __init__(self, address: str, port: int) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(64)  # the kernel completes handshakes; nobody ever reads

    def close(self) -> None:
        self.sock.close()


def test_flapping_backend_is_damped() -> None:
    interval = 0.05  # a generous timeout: a spurious failure would reset the rise count
    damping = Damping(window=30.0, changes=4, factor=5)

    async def scenario() -> tuple[list[int], int]:
        backend = HttpBackend("127.18.4.1").start()
        rec = Recorder()
        target = backend.target(interval=interval, timeout=0.2, rise=2, fall=1)
        rises: list[int] = []
        try:
            async with Checker([target], on_change=rec, damping=damping):
                await asyncio.sleep(0.2)
                for _ in range(3):  # down, up, down, up, down, up: damped from the 5th change
                    backend.set_status(503)
                    await rec.wait(lambda v: not v[key(backend)], 2.0)
                    hits = backend._server.hits  # type: ignore[union-attr]
                    backend.set_status(200)
                    await rec.wait(lambda v: v[key(backend)], 5.0)
                    rises.append(backend._server.hits - hits)  # type: ignore[union-attr]
                return rises, rec.calls[-1][2][0].damped
        finally:
            backend.stop()

    rises, damped = asyncio.run(scenario())
    print(f"\nprobes needed to come back: {rises} (rise 2, damped x5 after 4 changes)")
    # The probe that saw 503 last may be counted too; hence the +1 slack.
    assert rises[0] in (2, 3) and rises[1] in (2, 3), rises
    assert rises[2] in (10, 11), rises
    assert damped


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "var" / "health.json"

    async def scenario() -> None:
        with http_backends(2, base="127.18.5.1") as (up, down):
            down.stop()
            targets = [b.target(interval=0.05, timeout=0.2, rise=2, fall=2) for b in (up, down)]
            rec = Recorder()
            async with Checker(targets, on_change=rec, state_file=state):
                await rec.wait(lambda v: not v[key(down)], 2.0)
            # restarted agent: knows at once, before any probe, that `down` is down
            async with Checker(targets, state_file=state) as again:
                assert again.view() == {key(up): True, key(down): False}
                assert "refused" in again.states()[key(down)].last_error
            # without the file it would have started fail-open
            async with Checker(targets) as fresh:
                assert fresh.view() == {key(up): True, key(down): True}
            # flap history comes back too, so a restart cannot shed the damping
            async with Checker(targets, state_file=state, damping=Damping(changes=1)) as damped:
                assert damped.states()[key(down)].damped(time.monotonic(), damped.damping)

    asyncio.run(scenario())


def test_a_failing_callback_does_not_stop_checking() -> None:
    async def scenario() -> None:
        with http_backends(1, base="127.18.6.1") as (backend,):
            rec = Recorder()
            calls = 0

            def broken(view: dict[Key, bool], changes: tuple[HealthChange, ...]) -> None:
                nonlocal calls
                calls += 1
                rec(view, changes)
                raise RuntimeError("receiver bug")

            async with Checker([backend.target(interval=0.05, timeout=0.2, rise=1, fall=1)],
                               on_change=broken):
                await asyncio.sleep(0.1)
                backend.stop()
                await rec.wait(lambda v: not v[key(backend)], 2.0)
                backend.start()
                await rec.wait(lambda v: v[key(backend)], 2.0)
            assert calls == 2

    asyncio.run(scenario())


def test_async_callback_and_target_updates_keep_state() -> None:
    async def scenario() -> None:
        with http_backends(3, base="127.18.7.1") as (a, b, c):
            b.stop()
            views: list[dict[Key, bool]] = []
            got = asyncio.Event()

            async def on_change(view: dict[Key, bool], changes: tuple[HealthChange, ...]) -> None:
                await asyncio.sleep(0)
                views.append(view)
                got.set()

            mk = [x.target(interval=0.05, timeout=0.2, rise=1, fall=1) for x in (a, b, c)]
            async with Checker(mk[:2], on_change=on_change) as checker:
                async with asyncio.timeout(2):
                    while not views or views[-1].get(key(b)) is not False:
                        got.clear()
                        await got.wait()
                await checker.update_targets([mk[1], mk[2]])  # a removed, c added, b kept
                assert checker.view() == {key(b): False, key(c): True}
                async with asyncio.timeout(2):
                    while set(views[-1]) != {key(b), key(c)}:
                        got.clear()
                        await got.wait()
            assert ipaddress.IPv4Address("127.18.7.1") not in {k[1] for k in views[-1]}

    asyncio.run(scenario())
