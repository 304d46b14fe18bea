"""The health checker: every backend probed on one asyncio loop by one probe engine.

Each (service, backend) has fixed-rate slots (``start + n * interval``) with a random
initial phase, so hundreds of backends spread evenly over the interval instead of firing
together; the slots are entries in the engine's single timer heap (``engine.py``), not a
sleeping task per backend, and a slow probe delays only its own backend. Results feed that
backend's rise/fall state machine (``state.py``) strictly in launch order. Verdict changes
are coalesced by a single notifier task that persists the state file and then calls
``on_change(view, changes)`` -- never concurrently, always with the full view, so the
receiver (the table swap) can rebuild from scratch and stay idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from glb_agent import logs
from glb_agent.health import persist
from glb_agent.health.engine import Plan, Probe, ProbeEngine
from glb_agent.health.gue import GueProber
from glb_agent.health.probes import ProbeResult
from glb_agent.health.state import BackendState, Damping
from glb_agent.health.target import Key, Target

HealthView = Mapping[tuple[str, ipaddress.IPv4Address], bool]
_log = logs.get("health")


@dataclass(frozen=True)
class HealthChange:
    """One verdict change; ``at`` is the checker's monotonic clock when it was decided."""

    service: str
    address: ipaddress.IPv4Address
    healthy: bool
    detail: str
    damped: bool
    at: float


OnChange = Callable[[dict[Key, bool], tuple[HealthChange, ...]], Awaitable[None] | None]


@dataclass
class ProbeStats:
    """Whether the checker keeps up: probes run, slots started late, and by how much."""

    probes: int = 0
    late: int = 0  # slots that started more than 10% of an interval late
    overruns: int = 0  # slots skipped (the loop was a slot behind) or refused (in-flight limit)
    max_lag: float = 0.0  # seconds, worst slot start delay
    last_results: dict[Key, tuple[ProbeResult, ...]] = field(default_factory=dict)
    per_backend: dict[Key, int] = field(default_factory=dict)  # probes run per backend


async def check_once(targets: Iterable[Target], gue: GueProber | None = None
                     ) -> dict[Key, tuple[ProbeResult, ...]]:
    """Probe every target once, all concurrently (``glb-agent health check --once``)."""
    targets = list(targets)
    loop = asyncio.get_running_loop()
    engine = ProbeEngine(gue)
    try:
        waits = []
        for t in targets:
            fut: asyncio.Future[tuple[ProbeResult, ...]] = loop.create_future()
            engine.launch(Plan(t), Probe(lambda p, f=fut: f.done() or f.set_result(p.results)))
            waits.append(fut)
        results = await asyncio.gather(*waits)
    finally:
        engine.close()
    return {t.key: r for t, r in zip(targets, results, strict=True)}


class _Backend:
    """One (service, backend): its slots and its probes in flight, oldest first.

    A probe starts in every slot without waiting for the previous one: with a 100 ms
    interval and a 200 ms timeout a black-holed backend still fails once per slot, so
    ``fall`` failures take ``fall x interval + timeout``, not ``fall x timeout``. Results
    are observed strictly in launch order (the rise/fall counts are about consecutive
    probes), each as soon as it and every earlier one has finished.
    """

    __slots__ = ("checker", "interval", "limit", "live", "pending", "plan", "target")

    def __init__(self, checker: Checker, target: Target) -> None:
        self.checker, self.target, self.plan = checker, target, Plan(target)
        self.interval = target.check.interval
        # Probes a backend may have in flight: every slot of one timeout, plus the current.
        self.limit = int(target.check.timeout / self.interval) + 2
        self.pending: deque[Probe] = deque()
        self.live = True

    def fire(self, when: float, now: float) -> None:
        """Slot ``when`` is due (``now`` is the batch's time): launch, then book the next slot."""
        checker = self.checker
        stats, engine = checker.stats, checker._engine
        assert engine is not None
        lag = now - when
        if lag > self.interval * 0.1:
            stats.late += 1
        if lag > stats.max_lag:
            stats.max_lag = lag
        if len(self.pending) < self.limit:
            probe = Probe(self._collect)
            self.pending.append(probe)
            engine.launch(self.plan, probe)
        else:  # probes are not finishing even within their timeout: the loop is starved
            stats.overruns += 1
        when += self.interval
        if when < now:  # the loop was late past a whole slot: skip ahead, never burst
            stats.overruns += 1
            when = now
        engine.at(when, self)

    def _collect(self, _done: Probe) -> None:
        """Feed every finished probe at the head of ``pending`` to the state machine, in order."""
        pending = self.pending
        while pending and pending[0].results is not None:
            results = pending.popleft().results
            assert results is not None
            self.checker._observe(self.target, results)

    def stop(self, engine: ProbeEngine | None) -> None:
        self.live = False
        if engine is not None:
            for probe in self.pending:
                engine.cancel(probe)
        self.pending.clear()


class Checker:
    """Runs the probes, keeps the verdicts, persists them and reports changes.

    Use ``async with Checker(targets, on_change=..., state_file=...) as checker:``; after
    entering, ``checker.view()`` is the verdict to build the first tables from (restored
    from the state file where known, else ``initial_healthy``: fail open, as GLB does).
    ``on_change`` runs on the loop: a receiver doing heavy work (building 65,536-row
    tables) should hand it to an executor so probes stay on time.
    """

    def __init__(self, targets: Iterable[Target], on_change: OnChange | None = None,
                 state_file: str | Path | None = None, damping: Damping | None = None,
                 initial_healthy: bool = True, gue: GueProber | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_change = on_change
        self.state_file = Path(state_file) if state_file is not None else None
        self.damping = damping or Damping()
        self.initial_healthy = initial_healthy
        self.clock = clock
        self.stats = ProbeStats()
        self._targets: dict[Key, Target] = {}
        for t in targets:
            if t.key in self._targets:
                raise ValueError(f"backend {t.address} listed twice for service {t.service}")
            self._targets[t.key] = t
        self._gue = gue
        self._own_gue = False
        self._states: dict[Key, BackendState] = {}
        self._backends: dict[Key, _Backend] = {}
        self._engine: ProbeEngine | None = None
        self._notifier: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self._changes: list[HealthChange] = []
        self._saved: dict[Key, persist.Saved] = {}

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self.state_file is not None:
            self._saved = persist.load(self.state_file)
        if self._gue is None and any(t.check.gue for t in self._targets.values()):
            self._gue, self._own_gue = GueProber(), True
        if self._gue is not None:
            self._gue.open()
        self._engine = ProbeEngine(self._gue)
        for target in self._targets.values():
            self._add(target)
        self._notifier = asyncio.create_task(self._notify_loop(), name="health-notify")
        logs.event(_log, "health_checker_started", backends=len(self._targets),
                   restored=sum(k in self._saved for k in self._targets), state_file=self.state_file)

    async def stop(self) -> None:
        for backend in self._backends.values():
            backend.stop(None)  # the engine's close drops every probe in flight at once
        self._backends.clear()
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._notifier is not None:
            self._notifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notifier
        self._notifier = None
        self._changes.clear()  # undelivered changes are still in the states persisted now
        self._persist(self._snapshot())
        if self._gue is not None and self._own_gue:
            self._gue.close()
            self._gue = None
        logs.event(_log, "health_checker_stopped", probes=self.stats.probes)

    async def __aenter__(self) -> Checker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def update_targets(self, targets: Iterable[Target]) -> None:
        """Switch to a new target list (config reload): unchanged backends keep their state."""
        new = {t.key: t for t in targets}
        for key in [k for k in self._targets if k not in new or new[k] != self._targets[k]]:
            self._backends.pop(key).stop(self._engine)
            del self._targets[key]
            if key not in new:
                self._states.pop(key, None)
                self.stats.last_results.pop(key, None)
                self.stats.per_backend.pop(key, None)
            else:
                st = self._states[key]
                st.rise, st.fall = new[key].check.rise, new[key].check.fall
        if self._gue is None and any(t.check.gue for t in new.values()):
            self._gue, self._own_gue = GueProber(), True
            self._gue.open()
            if self._engine is not None:
                self._engine.gue = self._gue
        for key, target in new.items():
            if key not in self._targets:
                self._targets[key] = target
                self._add(target)
        self._dirty.set()  # the view changed shape; tell the receiver

    # --- views ---------------------------------------------------------------------------

    def view(self) -> dict[Key, bool]:
        """The full verdict: (service, backend address) -> healthy."""
        return {k: s.healthy for k, s in self._states.items()}

    def states(self) -> dict[Key, BackendState]:
        return dict(self._states)

    # --- internals -----------------------------------------------------------------------

    def _add(self, target: Target) -> None:
        key, hc = target.key, target.check
        if key not in self._states:
            st = BackendState(hc.rise, hc.fall, healthy=self.initial_healthy, since=self.clock())
            saved = self._saved.get(key)
            if saved is not None:
                to_mono = self.clock() - time.time()
                st.healthy, st.since = saved.healthy, saved.since + to_mono
                st.changes = deque(t + to_mono for t in saved.changes)
                st.last_error = saved.detail
            self._states[key] = st
        assert self._engine is not None, "start() first"
        backend = self._backends[key] = _Backend(self, target)
        self._engine.at(self._engine.time() + random.uniform(0, hc.interval), backend)

    def _observe(self, target: Target, results: tuple[ProbeResult, ...]) -> None:
        key = target.key
        stats = self.stats
        stats.probes += 1
        stats.last_results[key] = results
        stats.per_backend[key] = stats.per_backend.get(key, 0) + 1
        ok = all(r.ok for r in results)
        detail = "; ".join(r.detail for r in results if not r.ok) if not ok else ""
        st, now = self._states[target.key], self.clock()
        if st.observe(ok, now, self.damping, detail):
            change = HealthChange(target.service, target.address, st.healthy,
                                  detail or "; ".join(r.detail for r in results),
                                  st.damped(now, self.damping), now)
            self._changes.append(change)
            self._dirty.set()

    async def _notify_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            changes, self._changes = tuple(self._changes), []
            view = self.view()
            for c in changes:
                logs.event(_log, "backend_up" if c.healthy else "backend_down",
                           logging.INFO if c.healthy else logging.WARNING, service=c.service,
                           backend=c.address, detail=c.detail, damped=c.damped)
            if self.state_file is not None:  # snapshot here, write (fsync) off the loop
                await asyncio.get_running_loop().run_in_executor(None, self._persist, self._snapshot())
            if self.on_change is None:
                continue
            try:
                result = self.on_change(view, changes)
                if isinstance(result, Awaitable):
                    await result
            except Exception as exc:  # the receiver's bug must not stop health checking
                logs.event(_log, "health_callback_failed", logging.ERROR, error=repr(exc))

    def _snapshot(self) -> dict[Key, persist.Saved]:
        to_wall = time.time() - self.clock()
        return {k: persist.Saved(s.healthy, s.since + to_wall, tuple(t + to_wall for t in s.changes),
                                 s.last_error)
                for k, s in self._states.items()}

    def _persist(self, snapshot: dict[Key, persist.Saved]) -> None:
        if self.state_file is None:
            return
        try:
            persist.save(self.state_file, snapshot)
        except OSError as exc:
            logs.event(_log, "health_state_write_failed", logging.ERROR, path=self.state_file,
                       error=str(exc))
