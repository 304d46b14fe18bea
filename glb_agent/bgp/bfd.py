"""BFD on the director: BIRD 2's ``protocol bfd`` with one explicit neighbor per BGP peer.

ExaBGP does not speak BFD, so each director runs a BIRD instance that does nothing but BFD
(no routing protocol, no kernel protocol). Its sessions are the director's half of the
routers' ``bfd on`` / ``neighbor ... bfd``: while they are up the router keeps the BGP
session, when they go silent the router drops the session and every path through it
within ``interval x multiplier``.

Why BIRD and why gated by the feed:

* BIRD 2 is in Debian (``bird2``), already what the lab router runs, and its
  ``neighbor`` sessions need no routing protocol to request them.
* The daemon runs only while the data plane is ready: the feed (``glb-agent bgp-feed``,
  run by ExaBGP) starts it when its readiness check passes and **kills** it (SIGKILL) when
  it fails, in the same poll that withdraws the VIPs. A killed BFD speaker is silent, which
  every router treats as a failure; a graceful BIRD stop would send AdminDown, which
  RFC 5882 section 3.2 tells routers *not* to act on. So a wedged director (XDP detached,
  host up) is removed exactly like a powered-off one.
* Its lifetime is bounded by the feed's (PR_SET_PDEATHSIG), and the feed's by ExaBGP's:
  BFD never outlives the BGP speaker whose sessions it vouches for.

The daemon's control socket is ``<state dir>/bfd.ctl``; ``sessions()`` reads it for
``glb-agent bgp status`` and the metrics exporter.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from glb_agent.bgp.render import director_sessions
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import Bfd, Director
from glb_agent.errors import InputError
from glb_agent.render.templates import render

CONF_FILE = "bfd.conf"
CTL_FILE = "bfd.ctl"
PID_FILE = "bfd.pid"
BIRD = "/usr/sbin/bird"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
CTL_TIMEOUT = 1.0  # seconds for one control-socket query (a scrape must not hang)


@dataclass(frozen=True)
class BfdNeighbor:
    """One BFD session of this director: to ``address`` (a BGP peer) from ``local``."""

    peer: str
    address: str
    local: str
    bfd: Bfd


def bfd_neighbors(loaded: LoadedConfig, director: Director) -> list[BfdNeighbor]:
    """The director's sessions whose BFD is enabled (per peer, else bgp.bfd)."""
    bgp = loaded.config.bgp
    out = []
    for s in director_sessions(loaded, director):
        settings = bgp.bfd_for(s.peer)
        if settings.enabled:
            out.append(BfdNeighbor(s.peer.name, str(s.peer.address), s.local_address, settings))
    return out


def render_bfd_conf(loaded: LoadedConfig, director: Director) -> str | None:
    """BIRD config running only BFD for ``director``; None when no peer has BFD enabled.

    BIRD takes BFD timers per interface pattern, not per neighbor, so one director's BFD
    peers share one set of timers (validation refuses peers that differ)."""
    neighbors = bfd_neighbors(loaded, director)
    if not neighbors:
        return None
    timers = {n.bfd for n in neighbors}
    if len(timers) != 1:
        raise InputError(f"director {director.name}: its BFD peers have different timers "
                         f"({', '.join(n.peer for n in neighbors)}); one BFD daemon runs one set")
    return render("bfd.conf.j2", director=director, router_id=director.router_id or director.address,
                  neighbors=neighbors, bfd=timers.pop())


def _set_pdeathsig() -> None:
    """In the child: die with the feed, so BFD never vouches for a BGP speaker that is gone."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def bird_binary() -> str:
    found = shutil.which("bird") or (BIRD if Path(BIRD).exists() else None)
    if found is None:
        raise InputError("BFD is enabled but BIRD 2 is not installed (Debian package bird2); "
                         "install it or set bgp.bfd.enabled: false")
    return found


@dataclass
class BfdSession:
    """One row of ``show bfd sessions``."""

    address: str
    interface: str
    state: str
    since: str
    interval: float
    timeout: float

    @property
    def up(self) -> bool:
        return self.state == "Up"


def parse_sessions(text: str) -> list[BfdSession]:
    """Rows of BIRD's ``show bfd sessions`` reply (control-socket or birdc form)."""
    out = []
    for line in text.splitlines():
        if line[:4].isdigit() and line[4:5] in ("-", " "):  # control-socket reply code
            line = line[5:]
        fields = line.split()
        if len(fields) != 6 or fields[0] == "IP":
            continue
        with contextlib.suppress(ValueError):
            out.append(BfdSession(fields[0], fields[1], fields[2], fields[3], float(fields[4]),
                                  float(fields[5])))
    return out


def query(ctl: Path, command: str = "show bfd sessions", timeout: float = CTL_TIMEOUT) -> str:
    """One command over BIRD's control socket; the reply up to its final ``0000`` line.

    Speaking the socket directly (instead of running birdc) keeps a poll or a scrape at a
    fraction of a millisecond."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(ctl))
        reader = sock.makefile("r", encoding="utf-8", errors="replace")
        reader.readline()  # "0001 BIRD x.y ready."
        sock.sendall(command.encode() + b"\n")
        lines = []
        for line in reader:
            lines.append(line)
            code = line[:4]
            if code.isdigit() and line[4:5] == " " and (code == "0000" or code[0] in "89"):
                break
        return "".join(lines)


def ctl_path(state_dir: Path) -> Path:
    """The control socket for ``state_dir``: inside it, unless that path is too long for a
    unix socket address (108 bytes), then a name in /tmp derived from the state dir."""
    path = state_dir.resolve() / CTL_FILE
    if len(str(path).encode()) < 100:
        return path
    return Path("/tmp") / f"glb-bfd-{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.ctl"


def sessions(state_dir: Path) -> list[BfdSession] | None:
    """The director's BFD sessions now; None when the daemon is not running."""
    try:
        return parse_sessions(query(ctl_path(state_dir)))
    except OSError:
        return None


def peer_states(neighbors: list[BfdNeighbor], state_dir: Path) -> tuple[dict[str, str], bool] | None:
    """``({peer name: BFD state}, running)`` now; every peer "Down" while the speaker is not
    running (the data plane is not ready, or the feed is gone); None without BFD peers."""
    if not neighbors:
        return None
    found = sessions(state_dir)
    by_address = {x.address: x.state for x in found or []}
    return {n.peer: by_address.get(n.address, "Down") for n in neighbors}, found is not None


class BfdDaemon:
    """The BFD-only BIRD of one director, started and killed by the feed."""

    def __init__(self, conf_text: str, state_dir: Path, log: Callable[..., None],
                 bird: str | None = None) -> None:
        self.state_dir = state_dir
        self.conf = state_dir / CONF_FILE
        self.ctl = ctl_path(state_dir)
        self.pidfile = state_dir / PID_FILE
        self.log = log
        self.bird = bird or bird_binary()
        self.proc: subprocess.Popen | None = None
        state_dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(conf_text, encoding="utf-8")
        check = subprocess.run([self.bird, "-p", "-c", str(self.conf)], capture_output=True, text=True,
                               timeout=30)
        if check.returncode != 0:
            raise InputError(f"BIRD refuses the BFD config {self.conf}: {check.stderr.strip()}")
        self._kill_stale()

    def _kill_stale(self) -> None:
        """A feed killed with SIGKILL took its BIRD along (pdeathsig); a stale pid file from
        anything else that still names a BIRD on our socket is killed before we start."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if str(self.ctl).encode() in cmdline:
                os.kill(pid, signal.SIGKILL)
                self.log("bfd-stale-killed", pid=pid)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, reason: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.ctl.unlink()
        self.proc = subprocess.Popen(
            [self.bird, "-f", "-c", str(self.conf), "-s", str(self.ctl), "-P", str(self.pidfile)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None,
            preexec_fn=_set_pdeathsig, close_fds=True)
        self.log("bfd-start", pid=self.proc.pid, reason=reason)

    def kill(self, reason: str) -> None:
        """SIGKILL: silence, not AdminDown (see the module doc)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.log("bfd-stop", pid=self.proc.pid, reason=reason)
        self.proc = None

    def update(self, ready: bool, reason: str) -> None:
        """Follow the data plane: run while ready, silent otherwise; restart if BIRD died."""
        if ready:
            if self.proc is not None and self.proc.poll() is not None:
                self.log("bfd-died", pid=self.proc.pid, returncode=self.proc.returncode)
                self.proc = None
            if self.proc is None:
                self.start(reason)
        elif self.proc is not None:
            self.kill(reason)


__all__ = ["BfdDaemon", "BfdNeighbor", "BfdSession", "bfd_neighbors", "parse_sessions", "peer_states",
           "query", "render_bfd_conf", "sessions"]
