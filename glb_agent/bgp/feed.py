"""The ExaBGP API process: announce the VIPs only while this director can forward.

Desired state is recomputed every poll (default 200 ms) from three inputs: the data
plane's readiness, the drain flag, and whether the feed is stopping. The difference to
what ExaBGP has acknowledged becomes ``announce``/``withdraw`` commands. Withdrawal is
immediate; announcement waits for ``rise`` consecutive ready polls so a data plane that
is still loading (or flapping) does not attract traffic. Whatever the feed cannot do
(it or ExaBGP is killed) the BGP hold timer does on the router.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from glb_agent.bgp.api import ExaBgpPipe
from glb_agent.bgp.bfd import BfdDaemon
from glb_agent.bgp.events import EventLog
from glb_agent.bgp.prefixes import Prefix
from glb_agent.bgp.readiness import Readiness
from glb_agent.bgp.state import DrainState, FeedStatus

STATUS_HEARTBEAT = 5.0  # seconds between status rewrites when nothing changes
# A session not up this long after the feed started (or after it went down) gets one
# warning naming the likely causes; with TCP-MD5 a wrong password drops every segment
# silently, so nothing else would ever say why.
SESSION_WARN_AFTER = 15.0
RETRY_AFTER = 2.0  # seconds before re-sending a command ExaBGP rejected


@dataclass
class FeedSettings:
    interval: float = 0.2
    rise: int = 2
    session_warn: float = SESSION_WARN_AFTER


@dataclass
class Feed:
    """Reconciles ExaBGP's announced set with readiness and drain; see the module doc."""

    director: str
    prefixes: list[Prefix]
    ready: Readiness
    pipe: ExaBgpPipe
    drain: DrainState
    status: FeedStatus
    log: EventLog
    # Peer addresses of this director's sessions per IP version. Every command names its
    # neighbor, so a prefix goes only to the sessions of its own family: ExaBGP would refuse
    # (and log an error for) the others, and "next-hop self" must match the session's family.
    neighbors: dict[int, list[str]] = field(default_factory=dict)
    settings: FeedSettings = field(default_factory=FeedSettings)
    clock: Callable[[], float] = time.monotonic
    # The director's BFD speaker: runs while the data plane is ready (bfd.py), so a wedged
    # director's routers drop it within BFD's detection time, like a dead one.
    bfd: BfdDaemon | None = None
    # Peer address -> (name, whether the session uses TCP-MD5), for session events.
    peers: dict[str, tuple[str, bool]] = field(default_factory=dict)

    # None until the first reconciliation: after a feed restart ExaBGP may still hold
    # routes from the previous feed, so the first step states the full desired set.
    announced: set[Prefix] | None = None
    stopping: bool = False
    _streak: int = 0
    _last_ready: tuple[bool, str] | None = None
    _last_drain: str | None = None
    _retry_at: dict[Prefix, float] = field(default_factory=dict)
    _status_written: float = float("-inf")
    _dirty: bool = True
    _bfd_running: bool = False
    _sessions: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    _waiting_since: dict[str, float] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)

    def wanted(self) -> tuple[set[Prefix], str, str | None]:
        """The set to announce now, why, and the drain token it honours (if drained)."""
        ok, why = self.ready()
        if (ok, why) != self._last_ready:
            self.log("ready" if ok else "not-ready", reason=why)
            self._last_ready, self._dirty = (ok, why), True
        self._streak = self._streak + 1 if ok else 0
        drained = self.drain.current()
        token = None if drained is None else str(drained.get("token", ""))
        if token != self._last_drain:
            self.log("drained" if token is not None else "undrained",
                     reason=(drained or {}).get("reason", ""))
            self._last_drain, self._dirty = token, True
        if self.stopping:
            return set(), "stopping", token
        if token is not None:
            return set(), "drained", token
        if not ok:
            return set(), f"not ready: {why}", token
        if self._streak < self.settings.rise:
            return (self.announced or set()), "rising", token
        return set(self.prefixes), "ready", token

    def step(self) -> None:
        """One reconciliation; raises BrokenPipeError when ExaBGP is gone."""
        want, why, _token = self.wanted()
        known = self.announced
        now = self.clock()
        if known is None:
            withdraw = [p for p in self.prefixes if p not in want]
            announce = [p for p in self.prefixes if p in want]
        else:
            withdraw = sorted(known - want, key=_order)
            announce = [p for p in sorted(want - known, key=_order) if self._retry_at.get(p, 0) <= now]
        if withdraw or announce:
            self._apply(withdraw, announce, why, first=known is None)
        self._watch_sessions()
        if self.bfd is not None:
            # After the withdrawal, so a router hears the orderly withdraw before BFD falls silent.
            ready = self._last_ready or (False, "")
            self.bfd.update(self._bfd_wanted(ready[0]), "stopping" if self.stopping else ready[1])
            self._dirty = self._dirty or self._bfd_running != self.bfd.running
            self._bfd_running = self.bfd.running
        self._write_status(why)

    def _bfd_wanted(self, ready: bool) -> bool:
        """BFD runs while the data plane is ready, and also while the director is drained with
        every route withdrawn: then there is no path for BFD to protect, and a data plane
        stopped for maintenance (a switch between XDP and DPDK, a restart) must not make the
        routers reset the BGP sessions (BIRD's "BFD session down" is a session error, retried
        after its error wait time), which would delay the re-announcement after ``undrain``."""
        if self.stopping:
            return False
        idle = self._last_drain is not None and self.announced is not None and not self.announced
        return ready or idle

    def _commands(self, verb: str, prefix: Prefix) -> list[str]:
        route = f"{verb} route {prefix} next-hop self"
        peers = self.neighbors.get(prefix.version)
        if not peers:  # no session list given: let ExaBGP pick by family
            return [route]
        return [f"neighbor {peer} {route}" for peer in peers]

    def _send(self, batches: list[tuple[Prefix, list[str]]]) -> list[str]:
        """Send every prefix's commands in one write; one result per prefix: the worst of its
        commands' (error, then timeout, then done)."""
        results = iter(self.pipe.send([c for _, commands in batches for c in commands]))
        out = []
        for _, commands in batches:
            mine = [next(results) for _ in commands]
            out.append(next((r for r in ("error", "timeout") if r in mine), "done"))
        return out

    def _apply(self, withdraw: list[Prefix], announce: list[Prefix], why: str, first: bool) -> None:
        batches = [(p, self._commands("withdraw", p)) for p in withdraw]
        batches += [(p, self._commands("announce", p)) for p in announce]
        started = self.clock()
        results = self._send(batches)
        took = round(self.clock() - started, 4)
        current = set() if self.announced is None else set(self.announced)
        for prefix, result in zip(withdraw, results[: len(withdraw)], strict=True):
            # A withdraw of a route ExaBGP never had may be refused on the first
            # reconciliation; either way it is not announced afterwards.
            current.discard(prefix)
            if result != "done" and not first:
                self.log("withdraw-" + result, prefix=str(prefix))
        accepted = []
        for prefix, result in zip(announce, results[len(withdraw):], strict=True):
            if result == "error":
                self._retry_at[prefix] = self.clock() + RETRY_AFTER
                self.log("announce-error", prefix=str(prefix), retry_seconds=RETRY_AFTER)
                continue
            if result == "timeout":
                self.log("announce-timeout", prefix=str(prefix))
            accepted.append(prefix)
            current.add(prefix)
        if withdraw:
            self.log("withdraw", prefixes=[str(p) for p in withdraw], reason=why, ack_seconds=took)
        if accepted:
            self.log("announce", prefixes=[str(p) for p in accepted], reason=why, ack_seconds=took)
        self.announced, self._dirty = current, True

    def _write_status(self, why: str) -> None:
        now = self.clock()
        if not self._dirty and now - self._status_written < STATUS_HEARTBEAT:
            return
        ready = self._last_ready or (False, "")
        self.status.write({
            "director": self.director,
            "pid": os.getpid(),
            "ready": ready[0],
            "ready_reason": ready[1],
            "state": why,
            "drain_token": self._last_drain,
            "announced": [str(p) for p in sorted(self.announced or set(), key=_order)],
            "confirmed": self.announced is not None,
            "updated": time.time(),
            "bfd": self._bfd_status(),
            "sessions": {self.peers.get(a, (a, False))[0]: {"address": a, "state": st, "detail": d,
                                                            "since": at}
                         for a, (st, d, at) in sorted(self._sessions.items())},
        })
        self._status_written, self._dirty = now, False

    def _watch_sessions(self) -> None:
        """Log BGP session changes (ExaBGP's neighbor-changes) and warn once about a session
        that does not come up."""
        now = self.clock()
        current = dict(getattr(self.pipe, "sessions", {}))
        for address, (state, detail, _at) in current.items():
            if self._sessions.get(address, ("",))[0] != state:
                name = self.peers.get(address, (address, False))[0]
                self.log("session", peer=name, address=address, state=state, detail=detail)
                self._dirty = True
                if state == "up":
                    self._warned.discard(address)
                    self._waiting_since.pop(address, None)
                else:
                    self._waiting_since[address] = now
        self._sessions = current
        for address, (name, md5) in self.peers.items():
            if current.get(address, ("",))[0] == "up" or address in self._warned:
                continue
            since = self._waiting_since.setdefault(address, now)
            if now - since < self.settings.session_warn:
                continue
            self._warned.add(address)
            hint = ("check the TCP-MD5 password on both ends: a mismatch drops every segment "
                    "without an answer (the receiving kernel counts them: nstat TcpExtTCPMD5Failure)"
                    if md5 else "check reachability, ASNs and the router's config")
            self.log("session-not-established", peer=name, address=address,
                     seconds=round(now - since, 1), md5=md5, hint=hint)

    def _bfd_status(self) -> dict | None:
        """Whether the BFD speaker runs. Its sessions are read live by whoever shows them
        (``bgp status``, ``status``, the exporter): a control-socket query has no place in the
        poll loop that withdraws the VIPs."""
        if self.bfd is None:
            return None
        return {"running": self.bfd.running, "pid": self.bfd.proc.pid if self.bfd.proc else None}

    def run(self, stop: threading.Event) -> int:
        """Poll until stopped (SIGTERM), ExaBGP shuts down, or its pipe closes."""
        self.log("start", prefixes=[str(p) for p in self.prefixes], interval=self.settings.interval)
        try:
            while not stop.is_set():
                if self.pipe.closed.is_set() or self.pipe.shutdown.is_set():
                    # ExaBGP is going away: its sessions close and the router forgets
                    # the routes on its own; there is nobody left to withdraw through.
                    self.log("exabgp-gone", shutdown=self.pipe.shutdown.is_set())
                    return 0
                self.step()
                stop.wait(self.settings.interval)
            self.stopping = True
            self.step()  # withdraw everything and record it before exiting
            self.log("stop", announced=len(self.announced or ()))
            return 0
        except BrokenPipeError:
            self.log("exabgp-gone", shutdown=False)
            return 0
        finally:
            if self.bfd is not None:
                self.bfd.kill("feed exiting")


def _order(prefix: Prefix) -> tuple[int, Prefix]:
    return (prefix.version, prefix)


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT (agent or unit stop) end the loop after a final withdrawal."""

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
