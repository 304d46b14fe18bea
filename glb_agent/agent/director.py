"""The long-running director agent: data plane + health checks + live tables.

One process per director host (``glb-agent run``, systemd ``glb-director.service``):

1. load glb.yml, attach (or adopt) the XDP director, restore the last known health;
2. build every service's table from config + health and swap it in atomically, then tell
   systemd READY=1 — only now may ExaBGP announce the VIPs;
3. on a health change: rebuild and swap (in a worker thread, so probes stay on time);
4. on SIGHUP (``glb-agent apply``, ``systemctl reload``): re-read glb.yml; a bad file is
   logged and changes nothing; a good one updates targets and tables without detaching;
5. on SIGTERM: stop probing and exit, leaving the pinned program forwarding (a restart
   adopts it; ``glb-agent director stop`` detaches).

It writes ``<state dir>/director-status.json`` after every swap: generation, per-service
backends with state/health/row share, build seconds — what ``glb-agent status`` shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from glb_agent import logs
from glb_agent.bgp.bfd import bfd_neighbors, peer_states
from glb_agent.bgp.prefixes import session_prefixes
from glb_agent.bgp.state import DRAIN_FILE
from glb_agent.bgp.state import STATUS_FILE as FEED_STATUS_FILE
from glb_agent.config import ConfigError, LoadedConfig, load_config
from glb_agent.config.hosts import this_director
from glb_agent.config.model import Director
from glb_agent.dataplane.director import DirectorDataPlane
from glb_agent.dataplane.director_config import director_settings, for_dataplane, table_rows
from glb_agent.dataplane.dpdk import make_director
from glb_agent.errors import GlbError
from glb_agent.health.checker import Checker
from glb_agent.health.target import targets_from_config
from glb_agent.metrics import (
    BgpProvider,
    Exporter,
    GlbCollector,
    TableBuild,
    bgp_from_status_file,
    counters_from_director,
)
from glb_agent.systemd import notify
from glb_agent.table import upstream_json
from glb_agent.table.diff import diff_table
from glb_agent.table.send_order import two_columns
from glb_agent.util import paths
from glb_agent.util.files import write_atomic

_log = logging.getLogger("glb_agent.agent")

STATUS_FILE = "director-status.json"
LIVE_TABLES_FILE = "live-tables.json"  # upstream JSON of the tables in the data plane now
PID_FILE = "director.pid"
DEFAULT_HEALTH_FILE = paths.HEALTH_FILE


def state_dir() -> Path:
    """$GLB_STATE_DIR, else /run/glb/director (shared with the BGP feed and ``drain``)."""
    return paths.director_state_dir()


@dataclass
class AgentOptions:
    config: Path
    name: str | None = None
    pin_dir: Path | None = None
    xdp_mode: str = "auto"
    health_file: Path = DEFAULT_HEALTH_FILE
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = 9472  # None: no exporter
    state_dir: Path = field(default_factory=state_dir)


def table_status(specs_rows, health: dict, at_risk: dict[str, int] | None = None) -> list[dict]:
    """Per service: row semantics, rows at risk in the last config change, and backends with state,
    health and share of rows where each is first (the destination) or second (first hop)."""
    out = []
    for spec, rows in specs_rows:
        n = len(spec.backends)
        cols = two_columns(rows) if rows is not None else None
        prim = np.bincount(cols[:, 0], minlength=n) if cols is not None else np.zeros(n, int)
        sec = np.bincount(cols[:, 1], minlength=n) if cols is not None else np.zeros(n, int)
        total = rows.shape[0] if rows is not None else 1
        out.append({
            "service": spec.name,
            "semantics": spec.semantics,
            "candidates": spec.candidates,
            "rows_at_risk": (at_risk or {}).get(spec.name, 0),
            "backends": [{
                "address": str(b.ip), "state": b.state, "healthy": b.healthy,
                "primary_share": round(float(prim[i]) / total, 4),
                "secondary_share": round(float(sec[i]) / total, 4),
            } for i, b in enumerate(spec.backends)],
        })
    return out


def rows_at_risk_since(previous: dict[str, tuple], tables) -> dict[str, int]:
    """Per service, the rows the change from ``previous`` (name -> (spec, rows)) to
    ``tables`` put at risk (table/diff.py); 0 for a new service or one without rows."""
    out = {}
    for spec, rows in tables:
        old = previous.get(spec.name)
        if old is None or old[1] is None or rows is None:
            out[spec.name] = 0
            continue
        out[spec.name] = diff_table(old[0], old[1], spec, rows).rows_at_risk
    return out


class DirectorAgent:
    """Owns the director data plane, the Checker and the current config; one instance per process."""

    def __init__(self, opts: AgentOptions) -> None:
        self.opts = opts
        self.loaded: LoadedConfig = load_config(opts.config)
        self.director: DirectorDataPlane | None = None
        self.checker: Checker | None = None
        self.generation = 0
        self.builds: list[TableBuild] = []
        self._reload = asyncio.Event()
        self._stop = asyncio.Event()
        self._swap_lock = asyncio.Lock()
        self._started = time.time()
        self._live: dict[str, tuple] = {}  # service -> (spec, send-order rows) in the data plane
        # Rows the last config change (start or reload) put at risk: kept across the health
        # swaps that follow it (which move unhealthy proxies to the end of rows, never out).
        self._risk: dict[str, int] = {}
        self._risk_config: LoadedConfig | None = None
        # This host's entry of self.loaded, resolved at start and on each reload only: without
        # --name that reads the host's addresses, which a table swap has no reason to redo.
        self.me: Director | None = None

    # --- tables ------------------------------------------------------------------------

    def _build_and_swap(self, loaded: LoadedConfig, health: dict) -> None:
        """Runs in a worker thread: build every table, swap atomically, write status."""
        assert self.director is not None and self.me is not None
        t0 = time.perf_counter()
        tables = table_rows(loaded, health)
        built = time.perf_counter() - t0
        self.generation = self.director.update_tables(for_dataplane(tables))
        now = time.time()
        if loaded is not self._risk_config:
            self._risk = rows_at_risk_since(self._live, tables)
            self._risk_config = loaded
        self._live = {spec.name: (spec, rows) for spec, rows in tables}
        services = table_status(tables, health, self._risk)
        self.builds = [
            TableBuild(svc["service"], built, now, rows_at_risk=svc["rows_at_risk"],
                       first_share={b["address"]: b["primary_share"] for b in svc["backends"]})
            for svc in services
        ]
        status = {
            "director": self.me.name,
            "pid": os.getpid(),
            "config": str(self.opts.config),
            "generation": self.generation,
            "swapped_at": now,
            "build_seconds": round(built, 4),
            "started_at": self._started,
            "services": services,
        }
        write_atomic(self.opts.state_dir / LIVE_TABLES_FILE, upstream_json.dumps([s for s, _ in tables]))
        write_atomic(self.opts.state_dir / STATUS_FILE, json.dumps(status, indent=2) + "\n")
        logs.event(_log, "tables_swapped", generation=self.generation, build_seconds=round(built, 4),
                   unhealthy=sorted(f"{s}/{a}" for (s, a), ok in health.items() if not ok))

    async def swap(self) -> None:
        assert self.checker is not None
        async with self._swap_lock:
            await asyncio.to_thread(self._build_and_swap, self.loaded, self.checker.view())

    async def _on_health(self, view: dict, changes: list) -> None:
        await self.swap()

    # --- reload ------------------------------------------------------------------------

    async def reload(self) -> None:
        notify("RELOADING=1")
        try:
            new = await asyncio.to_thread(load_config, self.opts.config)
            me = this_director(new, self.opts.name, strict=True)
            new_settings = director_settings(new, me.name, pin_dir=self.opts.pin_dir,
                                             xdp_mode=self.opts.xdp_mode)
        except (ConfigError, GlbError) as exc:
            logs.event(_log, "reload_rejected", level=logging.ERROR, error=str(exc))
            notify("READY=1")
            return
        assert self.director is not None and self.checker is not None
        new_director = make_director(new, me.name, new_settings, self.opts.state_dir)
        if type(new_director) is not type(self.director):
            # directors[].dataplane changed: both want the interface's XDP hook, so the old
            # data plane stops before the new one starts (a short gap; drain first).
            await asyncio.to_thread(self.director.stop)
            self.director = new_director
            await asyncio.to_thread(self.director.start)
        elif new_settings != self.director.settings:
            # Compile-time constants changed (MACs, source, hash fields): the loader swaps the
            # program in place through the pinned link (the DPDK process gets the new
            # director.conf with the tables); tables are reloaded just below.
            self.director.close()
            self.director = new_director
            await asyncio.to_thread(self.director.start)
        self.loaded, self.me = new, me
        await self.checker.update_targets(targets_from_config(new, me))
        await self.swap()
        logs.event(_log, "reload_applied", generation=self.generation)
        notify("READY=1")

    def _bgp_provider(self, me) -> BgpProvider:
        """BGP and BFD state for the exporter: the feed's status file (written by ExaBGP's
        feed into the same state directory) and the BFD speaker's control socket."""
        prefixes, _skipped = session_prefixes(self.loaded.config, me)
        neighbors = bfd_neighbors(self.loaded, me)
        state = self.opts.state_dir
        return bgp_from_status_file(state / FEED_STATUS_FILE, [str(p) for p in prefixes],
                                    drain_file=state / DRAIN_FILE,
                                    peers=[p.name for p in self.loaded.config.peers_of(me)],
                                    bfd=partial(peer_states, neighbors, state) if neighbors else None)

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.opts.state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.opts.state_dir / PID_FILE, f"{os.getpid()}\n")
        self.me = me = this_director(self.loaded, self.opts.name, strict=True)
        settings = director_settings(self.loaded, me.name, pin_dir=self.opts.pin_dir,
                                     xdp_mode=self.opts.xdp_mode)
        self.director = make_director(self.loaded, me.name, settings, self.opts.state_dir)
        how = await asyncio.to_thread(self.director.start)
        logs.event(_log, "dataplane_started", how=how, interface=settings.interface,
                   pin_dir=str(settings.pin_dir))
        exporter = None
        self.checker = Checker(targets_from_config(self.loaded, me), on_change=self._on_health,
                               state_file=self.opts.health_file)
        try:
            async with self.checker:
                await self.swap()
                if self.opts.metrics_port is not None:
                    exporter = Exporter(GlbCollector(
                        counters=lambda: counters_from_director(self.director.counters()),
                        health=self.checker.view, tables=lambda: self.builds,
                        bgp=self._bgp_provider(me)),
                        address=self.opts.metrics_address, port=self.opts.metrics_port)
                    exporter.start()
                notify("READY=1")
                logs.event(_log, "director_ready", generation=self.generation)
                while not self._stop.is_set():
                    waiters = {asyncio.create_task(self._stop.wait()),
                               asyncio.create_task(self._reload.wait())}
                    _done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    for task in pending:
                        task.cancel()
                    if self._reload.is_set() and not self._stop.is_set():
                        self._reload.clear()
                        await self.reload()
        finally:
            notify("STOPPING=1")
            if exporter is not None:
                exporter.stop()
            if self.director is not None:
                self.director.close()  # leave the pinned program forwarding
            with contextlib.suppress(FileNotFoundError):
                (self.opts.state_dir / PID_FILE).unlink()
            logs.event(_log, "director_agent_stopped")
        return 0


def read_status(directory: Path | None = None) -> dict | None:
    path = (directory or state_dir()) / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def running_pid(directory: Path | None = None) -> int | None:
    """The agent's pid if its pid file names a live process."""
    try:
        pid = int(((directory or state_dir()) / PID_FILE).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


__all__ = ["AgentOptions", "DirectorAgent", "read_status", "running_pid"]
