"""The probe engine: one timer and one epoll set run every probe of a checker.

Why not a task per backend and a coroutine per probe: at the default 0.1 s interval,
4 directors x 300 backends on a 2-core host is 12,000 probes/s, and a sleeping task per
backend plus a Task, ``asyncio.gather``, ``asyncio.timeout`` and ``loop.sock_connect`` per
probe cost 80-120 us of CPU per TCP probe and ~175 us per HTTP probe (asyncio streams)
here, more on a busy host (bench/bench_health_scale.py, docs/health.md): the checkers fell
behind. Here

* **one heap, one timer**: probe slots and every check's deadline are entries in one heap;
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
* **HTTP checks are the same connect** with two more steps on the same socket: when it
  is writable the request is sent, then the socket waits readable until the status line
  is in (only that line is read, never the body). Closed with a RST as well.
* **GUE echoes are callbacks too**: ``GueProber.send`` and its one receive socket call
  back on the reply or ICMP error; the deadline is a heap entry like a connect's.

No Task, coroutine, future or ``asyncio.timeout`` exists per probe.

``Probe.on_done`` is called once, with every check's result, from a loop callback or
synchronously from ``launch`` (when nothing can be started). A cancelled probe never
calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import itertools
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Protocol

from glb_agent.health.gue import GueProber, describe
from glb_agent.health.probes import MAX_STATUS_LINE, ProbeResult, http_request, status_of
from glb_agent.health.target import Target

QUANTUM = 0.001  # seconds: entries due this close together run in one timer batch
_SOCK_FLAGS = socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
_LINGER_RST = struct.pack("ii", 1, 0)  # struct linger {l_onoff 1, l_linger 0}: close sends a RST
_POLL_MAX = 1024


class Timed(Protocol):
    """A heap entry's payload: ``fire(when, now)`` runs it; dead entries are skipped."""

    live: bool

    def fire(self, when: float, now: float) -> None: ...


class Plan:
    """What one target's probe does, with the per-probe strings and addresses made once."""

    __slots__ = ("gue_where", "http_addr", "http_expect", "http_request", "http_where", "kinds",
                 "target", "tcp_addr", "tcp_fail", "tcp_ok", "timeout")

    def __init__(self, target: Target) -> None:
        self.target = target
        self.kinds = target.kinds
        self.timeout = target.check.timeout
        tcp = target.check.tcp
        self.tcp_addr = (str(target.address), tcp.port) if tcp is not None else None
        where = f"{target.address}:{tcp.port}" if tcp is not None else ""
        self.tcp_ok = f"connected to {where}"
        self.tcp_fail = f"connect {where}: "
        http = target.check.http
        self.http_addr = (str(target.address), http.port) if http is not None else None
        self.http_where = f"http://{target.address}:{http.port}{http.path}: " if http is not None else ""
        self.http_request = http_request(target.address, http.port, http.path) if http is not None else b""
        self.http_expect = http.status if http is not None else 0
        gue = target.check.gue
        self.gue_where = (describe(target.source, target.address, gue.port, target.inner) + ": "
                          if gue is not None and target.source is not None else "")

    def result(self, http: bool, ok: bool, what: str, took: float) -> ProbeResult:
        """A TCP or HTTP check's result with its detail: ``what`` happened (no address)."""
        if http:
            return ProbeResult("http", ok, self.http_where + what, took)
        return ProbeResult("tcp", ok, self.tcp_ok if ok else self.tcp_fail + what, took)


class Probe:
    """One launch of every check of a target; ``results`` is set when all are done."""

    __slots__ = ("_left", "_parts", "_started", "on_done", "results")

    def __init__(self, on_done: Callable[[Probe], None] | None) -> None:
        self.on_done = on_done
        self.results: tuple[ProbeResult, ...] | None = None
        self._parts: list[ProbeResult | None] = []
        self._left = 0
        self._started = 0.0

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
    """One TCP or HTTP check in flight on its socket; also its deadline (a heap entry).

    ``stage``: 0 connecting (waits writable), 1 sending the request (HTTP; waits writable),
    2 reading the status line (HTTP; waits readable).
    """

    __slots__ = ("buf", "connects", "fd", "http", "index", "live", "plan", "probe", "sock", "stage")

    def __init__(self, connects: dict[int, _Connect], sock: socket.socket, probe: Probe, index: int,
                 plan: Plan, http: bool) -> None:
        self.connects, self.sock, self.probe, self.index, self.plan = connects, sock, probe, index, plan
        self.fd = sock.fileno()
        self.http = http
        self.stage = 0
        self.buf = b""
        self.live = True

    def fire(self, when: float, now: float) -> None:  # the deadline passed first
        self.finish(False, "timeout", now)

    def finish(self, ok: bool, what: str, now: float) -> None:
        """Close the socket (RST if it connected) and hand the result to the probe."""
        self.live = False
        self.connects.pop(self.fd, None)
        if self.stage:  # connected: no FIN handshake, no TIME_WAIT for a probe connection
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        self.sock.close()
        self.probe._part(self.index, self.plan.result(self.http, ok, what, now - self.probe._started))

    def ready(self, epoll: select.epoll, now: float) -> None:
        """The socket is writable, readable or in error: take the next step."""
        sock = self.sock
        if self.stage == 0:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.finish(False, _reason(err), now)
                return
            self.stage = 1
            if not self.http:
                self.finish(True, "", now)
                return
            self.buf = self.plan.http_request
        if self.stage == 1:
            try:
                sent = sock.send(self.buf)
            except BlockingIOError:
                return
            except OSError as exc:
                self.finish(False, _reason(exc.errno or errno.EIO), now)
                return
            self.buf = self.buf[sent:]
            if self.buf:  # the rest when the socket is writable again
                return
            self.stage = 2
            epoll.modify(self.fd, select.EPOLLIN)
            return
        try:
            data = sock.recv(MAX_STATUS_LINE + 1)
        except BlockingIOError:
            return
        except OSError as exc:
            self.finish(False, _reason(exc.errno or errno.EIO), now)
            return
        if not data:
            self.finish(False, "connection closed before a status line", now)
            return
        self.buf += data
        end = self.buf.find(b"\n")
        if end < 0 or end >= MAX_STATUS_LINE:
            if end >= 0 or len(self.buf) > MAX_STATUS_LINE:
                self.finish(False, "status line too long", now)
            return
        try:
            status = status_of(self.buf[:end + 1])
        except ValueError as exc:
            self.finish(False, str(exc), now)
            return
        expect = self.plan.http_expect
        if status == expect:
            self.finish(True, f"status {status}", now)
        else:
            self.finish(False, f"status {status}, expected {expect}", now)


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
        self._connects: dict[int, _Connect] = {}  # fd -> TCP/HTTP check in flight
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
        for _, _, item in self._heap:  # echoes in flight: their deadlines are in the heap
            if isinstance(item, _Echo) and item.live:
                item.live = False
                item.gue.forget(item.seq)
        self._heap.clear()

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
            # Answers already queued count before any deadline is judged: after a stall the
            # timer and the sockets are ready together, and the timer must not win.
            self._poll()
            if self.gue is not None:
                self.gue.drain()
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
                self._connect(plan, probe, index, now, http=False)
            elif kind == "http":
                self._connect(plan, probe, index, now, http=True)
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
        except RuntimeError as exc:  # 65,536 echoes outstanding: this slot fails, the next may not
            echo.live = False
            probe._part(index, ProbeResult("gue", False, f"{plan.gue_where}probe error: {exc}", 0.0))
            return
        self.at(now + plan.timeout, echo)

    def cancel(self, probe: Probe) -> None:
        """Forget ``probe``: its callback never runs; its sockets and tasks are released."""
        probe.on_done = None
        if probe.results is not None:
            return
        for conn in [c for c in self._connects.values() if c.probe is probe]:
            conn.live = False
            del self._connects[conn.fd]
            conn.sock.close()
        for _, _, item in self._heap:
            if isinstance(item, _Echo) and item.probe is probe and item.live:
                item.live = False
                item.gue.forget(item.seq)

    def _connect(self, plan: Plan, probe: Probe, index: int, now: float, http: bool) -> None:
        assert self._epoll is not None
        addr = plan.http_addr if http else plan.tcp_addr
        assert addr is not None
        try:
            sock = socket.socket(socket.AF_INET, _SOCK_FLAGS)
        except OSError as exc:  # out of fds or memory: this probe fails, the next may not
            probe._part(index, plan.result(http, False, _reason(exc.errno or errno.EIO), 0.0))
            return
        conn = _Connect(self._connects, sock, probe, index, plan, http)
        rc = sock.connect_ex(addr)
        if rc not in (errno.EINPROGRESS, 0):  # refused at once (finish closes the socket)
            conn.finish(False, _reason(rc), now)
            return
        self._connects[conn.fd] = conn
        self._epoll.register(conn.fd, select.EPOLLOUT)
        self.at(now + plan.timeout, conn)

    def _poll(self) -> None:
        """Advance every TCP/HTTP check whose socket the kernel reports ready."""
        epoll = self._epoll
        if epoll is None:
            return
        connects, poll = self._connects, epoll.poll
        while True:
            events = poll(0, _POLL_MAX)
            if not events:
                return
            now = self._loop.time()
            for fd, _ in events:
                conn = connects.get(fd)
                if conn is not None:
                    conn.ready(epoll, now)
            if len(events) < _POLL_MAX:
                return


def _reason(err: int) -> str:
    return os.strerror(err).lower()


def _unavailable(kind: str, why: str) -> ProbeResult:
    return ProbeResult(kind, False, f"{kind} probe unavailable: {why}", 0.0)
