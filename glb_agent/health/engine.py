"""The probe engine: one timer and one epoll set run every probe of a checker.

Why not a task per backend and a coroutine per probe: at the default 0.1 s interval,
4 directors x 300 backends on a 2-core host is 12,000 probes/s, and a sleeping task per
backend plus a Task, ``asyncio.gather``, ``asyncio.timeout`` and ``loop.sock_connect`` per
probe cost ~70-330 us of CPU each (bench/bench_health_scale.py, docs/health.md): the
checkers fell behind. Here

* **one heap, one timer**: probe slots and TCP connect deadlines are entries in one heap;
  a single ``loop.call_at`` handle is armed for the earliest entry, and when it fires every
  entry due within ``QUANTUM`` runs in that batch (a slot starts at most ``QUANTUM`` early,
  never late because of batching). Entries of finished connects or removed backends are
  dropped lazily (``live`` is False), so finishing a probe costs no heap work.
* **TCP connects are plain callbacks**: a non-blocking socket, ``connect_ex``, registered
  in the engine's own ``select.epoll`` (one fd in the event loop for all connects), the
  outcome read from ``SO_ERROR``, no Task, coroutine or future per probe. A refused
  connect on a nearby host is answered before the batch ends, so the batch polls once
  before returning and most results are in without another loop iteration. A connect
  that succeeded is closed with ``SO_LINGER`` 0 (RST): no TIME_WAIT on either side for
  thousands of probe connections a second, and nothing for the backend to finish.
* **GUE echoes are callbacks too**: ``GueProber.send`` and its one receive socket call
  back on the reply or ICMP error; the deadline is a heap entry like a connect's.
* HTTP checks stay coroutines (a Task each, bounded by their own timeout: a request and a
  status line are not worth a hand-written state machine); a probe is done when all its
  checks are.

``Probe.on_done`` is called once, with every check's result, from a loop callback or
synchronously from ``launch`` (when nothing can be started). A cancelled probe never
calls it.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import itertools
import os
import select
import socket
import time
from collections.abc import Callable
from typing import Protocol

from glb_agent.health.gue import GueProber, describe
from glb_agent.health.probes import ProbeResult, http_probe
from glb_agent.health.target import Target

QUANTUM = 0.001  # seconds: entries due this close together run in one timer batch
_SOCK_FLAGS = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
_LINGER_RST = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {l_onoff 1, l_linger 0}
_POLL_MAX = 1024


class Timed(Protocol):
    """A heap entry's payload: ``fire(when, now)`` runs it; dead entries are skipped."""

    live: bool

    def fire(self, when: float, now: float) -> None: ...


class Plan:
    """What one target's probe does, with the per-probe strings and addresses made once."""

    __slots__ = ("gue_where", "kinds", "target", "tcp_addr", "tcp_fail", "tcp_ok", "timeout")

    def __init__(self, target: Target) -> None:
        self.target = target
        self.kinds = target.kinds
        self.timeout = target.check.timeout
        tcp = target.check.tcp
        self.tcp_addr = (str(target.address), tcp.port) if tcp is not None else None
        where = f"{target.address}:{tcp.port}" if tcp is not None else ""
        self.tcp_ok = f"connected to {where}"
        self.tcp_fail = f"connect {where}: "
        gue = target.check.gue
        self.gue_where = (describe(target.source, target.address, gue.port, target.inner) + ": "
                          if gue is not None and target.source is not None else "")


class Probe:
    """One launch of every check of a target; ``results`` is set when all are done."""

    __slots__ = ("_left", "_parts", "_started", "on_done", "results")

    def __init__(self, on_done: Callable[[Probe], None] | None) -> None:
        self.on_done = on_done
        self.results: tuple[ProbeResult, ...] | None = None
        self._parts: list[ProbeResult | None] = []
        self._left = 0
        self._started = 0.0

    @property
    def done(self) -> bool:
        return self.results is not None

    def _part(self, index: int, result: ProbeResult) -> None:
        parts = self._parts
        if parts[index] is not None:
            return
        parts[index] = result
        self._left -= 1
        if self._left == 0:
            self.results = tuple(parts)  # type: ignore[arg-type]  # every slot is filled now
            cb, self.on_done = self.on_done, None
            if cb is not None:
                cb(self)


class _Connect:
    """One TCP connect in flight: its socket, its probe, and its deadline (a heap entry)."""

    __slots__ = ("index", "live", "plan", "probe", "sock")

    def __init__(self, sock: socket.socket, probe: Probe, index: int, plan: Plan) -> None:
        self.sock, self.probe, self.index, self.plan = sock, probe, index, plan
        self.live = True

    def fire(self, when: float, now: float) -> None:  # the deadline passed first
        self.live = False
        self.sock.close()
        plan = self.plan
        self.probe._part(self.index, ProbeResult("tcp", False, plan.tcp_fail + "timeout",
                                                 now - self.probe._started))


class _Echo:
    """One GUE echo in flight: its sequence number, its probe, and its deadline."""

    __slots__ = ("gue", "index", "live", "plan", "probe", "seq")

    def __init__(self, gue: GueProber, probe: Probe, index: int, plan: Plan) -> None:
        self.gue, self.probe, self.index, self.plan = gue, probe, index, plan
        self.seq = -1
        self.live = True

    def answer(self, why: str | None) -> None:  # GueProber: reply (None) or ICMP error
        if self.live:
            self.live = False
            self.probe._part(self.index, ProbeResult("gue", why is None,
                                                     self.plan.gue_where + (why or "echo reply"),
                                                     time.monotonic() - self.probe._started))

    def fire(self, when: float, now: float) -> None:  # the deadline passed first
        self.live = False
        self.gue.forget(self.seq)
        self.probe._part(self.index, ProbeResult("gue", False, self.plan.gue_where + "timeout",
                                                 now - self.probe._started))


class ProbeEngine:
    """Runs probes and timed callbacks for one checker on the running loop.

    ``at(when, item)`` schedules ``item.fire`` (loop time); ``launch(plan, probe)`` starts
    every check of ``plan``. ``close()`` drops everything in flight without callbacks.
    """

    def __init__(self, gue: GueProber | None = None) -> None:
        self.gue = gue
        self._loop = asyncio.get_running_loop()
        self._heap: list[tuple[float, int, Timed]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._in_batch = False
        self._epoll: select.epoll | None = select.epoll()
        self._connects: dict[int, _Connect] = {}  # fd -> connect in flight
        self._tasks: set[asyncio.Task[ProbeResult]] = set()
        self._loop.add_reader(self._epoll.fileno(), self._poll)

    def close(self) -> None:
        if self._epoll is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._epoll = None
        for conn in self._connects.values():
            conn.live = False
            conn.sock.close()
        self._connects.clear()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        for _, _, item in self._heap:  # echoes in flight: their deadlines are in the heap
            if isinstance(item, _Echo) and item.live:
                item.live = False
                item.gue.forget(item.seq)
        self._heap.clear()

    @property
    def in_flight(self) -> int:
        return len(self._connects) + len(self._tasks)

    # --- timer ---------------------------------------------------------------------------

    def time(self) -> float:
        return self._loop.time()

    def at(self, when: float, item: Timed) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), item))
        if not self._in_batch and when < self._timer_at:
            self._arm()

    def _arm(self) -> None:
        heap = self._heap
        while heap and not heap[0][2].live:
            heapq.heappop(heap)
        if not heap or heap[0][0] >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = heap[0][0]
        self._timer = self._loop.call_at(self._timer_at, self._batch)

    def _batch(self) -> None:
        self._timer, self._timer_at, self._in_batch = None, float("inf"), True
        try:
            now = self._loop.time()
            limit, heap, pop = now + QUANTUM, self._heap, heapq.heappop
            while heap and heap[0][0] <= limit:
                when, _, item = pop(heap)
                if item.live:
                    item.fire(when, now)
            self._poll()  # connects refused while the batch ran: no extra loop iteration
        finally:
            self._in_batch = False
            if self._epoll is not None:
                self._arm()

    # --- probes --------------------------------------------------------------------------

    def launch(self, plan: Plan, probe: Probe) -> None:
        """Start every check of ``plan``; ``probe.on_done`` runs when all have a result."""
        target = plan.target
        hc = target.check
        kinds = plan.kinds
        probe._parts = [None] * len(kinds)
        probe._left = len(kinds)
        probe._started = now = self._loop.time()
        if not kinds:  # nothing configured can fail: healthy
            probe.results = ()
            cb, probe.on_done = probe.on_done, None
            if cb is not None:
                cb(probe)
            return
        for index, kind in enumerate(kinds):
            if kind == "tcp":
                self._connect(plan, probe, index, now)
            elif kind == "http":
                assert hc.http is not None
                self._task(probe, index, "http", http_probe(
                    target.address, hc.http.port, hc.http.path, hc.http.status, plan.timeout))
            else:
                assert hc.gue is not None
                if target.source is None:
                    probe._part(index, _unavailable("gue", "no director source address"))
                elif self.gue is None:
                    probe._part(index, _unavailable("gue", "no raw socket (needs root)"))
                else:
                    self._echo(plan, probe, index, now)

    def _echo(self, plan: Plan, probe: Probe, index: int, now: float) -> None:
        gue, target = self.gue, plan.target
        assert gue is not None and target.check.gue is not None and target.source is not None
        echo = _Echo(gue, probe, index, plan)
        try:
            echo.seq = gue.send(target.source, target.address, target.check.gue.port, target.inner,
                                echo.answer)
        except OSError as exc:
            echo.live = False
            why = exc.strerror.lower() if exc.strerror else str(exc)
            probe._part(index, ProbeResult("gue", False, plan.gue_where + why, 0.0))
            return
        self.at(now + plan.timeout, echo)

    def cancel(self, probe: Probe) -> None:
        """Forget ``probe``: its callback never runs; its sockets and tasks are released."""
        probe.on_done = None
        if probe.results is not None:
            return
        for conn in [c for c in self._connects.values() if c.probe is probe]:
            self._drop(conn)
        for task in [t for t in self._tasks if getattr(t, "glb_probe", None) is probe]:
            task.cancel()
        for _, _, item in self._heap:
            if isinstance(item, _Echo) and item.probe is probe and item.live:
                item.live = False
                item.gue.forget(item.seq)

    def _drop(self, conn: _Connect) -> None:
        conn.live = False
        self._connects.pop(conn.sock.fileno(), None)
        conn.sock.close()

    def _connect(self, plan: Plan, probe: Probe, index: int, now: float) -> None:
        assert self._epoll is not None and plan.tcp_addr is not None
        try:
            sock = socket.socket(socket.AF_INET, _SOCK_FLAGS)
        except OSError as exc:  # out of fds or memory: this probe fails, the next may not
            probe._part(index, ProbeResult("tcp", False, plan.tcp_fail + _reason(exc.errno), 0.0))
            return
        rc = sock.connect_ex(plan.tcp_addr)
        if rc not in (errno.EINPROGRESS, 0):
            sock.close()
            probe._part(index, ProbeResult("tcp", False, plan.tcp_fail + _reason(rc), 0.0))
            return
        conn = _Connect(sock, probe, index, plan)
        fd = sock.fileno()
        self._connects[fd] = conn
        self._epoll.register(fd, select.EPOLLOUT)
        self.at(now + plan.timeout, conn)

    def _poll(self) -> None:
        """Finish every connect the kernel has decided (connected, refused, unreachable)."""
        if self._epoll is None:
            return
        connects, poll = self._connects, self._epoll.poll
        while True:
            events = poll(0, _POLL_MAX)
            if not events:
                return
            now = self._loop.time()
            for fd, _ in events:
                conn = connects.pop(fd, None)
                if conn is None:
                    continue
                conn.live = False
                sock = conn.sock
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err == 0:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                sock.close()
                plan = conn.plan
                took = now - conn.probe._started
                conn.probe._part(conn.index, ProbeResult("tcp", True, plan.tcp_ok, took) if err == 0
                                 else ProbeResult("tcp", False, plan.tcp_fail + _reason(err), took))
            if len(events) < _POLL_MAX:
                return

    def _task(self, probe: Probe, index: int, kind: str, coro: object) -> None:
        task = self._loop.create_task(coro)  # type: ignore[arg-type]
        task.glb_probe = probe  # type: ignore[attr-defined]  # for cancel()
        self._tasks.add(task)

        def done(t: asyncio.Task[ProbeResult]) -> None:
            self._tasks.discard(t)
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:  # the probes report backend problems; this is a bug, not a verdict
                probe._part(index, ProbeResult(kind, False, f"probe error: {exc!r}", 0.0))
            else:
                probe._part(index, t.result())

        task.add_done_callback(done)


def _reason(err: int) -> str:
    return os.strerror(err).lower()


def _unavailable(kind: str, why: str) -> ProbeResult:
    return ProbeResult(kind, False, f"{kind} probe unavailable: {why}", 0.0)
