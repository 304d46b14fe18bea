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

A reload that changes this director's ``dataplane`` (XDP <-> DPDK) is a *switch*, done the
way an operator would do it by hand, so no connection breaks (``_switch_dataplane``): drain
(the BGP feed withdraws the VIPs), wait until no VIP packet has arrived for
``switch_quiet`` seconds (the routers now send our flows to the other directors, which
compute the same tables), stop the old data plane, start the new one with the same tables,
wait for its readiness (what the feed checks), undrain. Any failure before the new data
plane is ready puts the old one back and keeps the old glb.yml, as for a rejected reload.

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
from glb_agent.bgp.state import DRAIN_FILE, DrainState, FeedStatus, undrain_seen, withdrawal_confirmed
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
# The drain flag's owner while the agent switches data planes: the agent clears only its own
# flag (also at its next start, after a crash mid-switch), never an operator's.
SWITCH_OWNER = "glb-agent run: data-plane switch"


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
    # Data-plane switch: no VIP packet for this long after the withdrawal means the routers
    # have moved this director's flows away; each wait of a switch gives up after timeout.
    switch_quiet: float = 1.0
    switch_timeout: float = 20.0


class SwitchError(GlbError):
    """A data-plane switch could not go on safely; the old data plane stays (or comes back)."""


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
        self._status: dict = {}  # the last status written (director-status.json)
        self._switch: dict | None = None  # the last data-plane switch, as shown in the status

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
        self._status = {
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
        self._write_status()
        logs.event(_log, "tables_swapped", generation=self.generation, build_seconds=round(built, 4),
                   unhealthy=sorted(f"{s}/{a}" for (s, a), ok in health.items() if not ok))

    def _write_status(self) -> None:
        """director-status.json: the last swap's status, the running data plane and the last
        data-plane switch (``apply`` waits for a switch to finish through it)."""
        if not self._status:
            return
        status = dict(self._status)
        status["dataplane"] = self.director.dataplane if self.director is not None else None
        if self._switch is not None:
            status["switch"] = dict(self._switch)
        write_atomic(self.opts.state_dir / STATUS_FILE, json.dumps(status, indent=2) + "\n")

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
        if new_director.dataplane != self.director.dataplane:
            # directors[].dataplane changed: both want the interface's XDP hook, so the old
            # data plane must stop before the new one starts; drained, nobody notices.
            if not await self._switch_dataplane(new, new_director):
                notify("READY=1")
                return
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

    # --- data-plane switch ---------------------------------------------------------------

    async def _switch_dataplane(self, new: LoadedConfig, target: DirectorDataPlane) -> bool:
        """Replace the running data plane by ``target`` (the other kind) under drain; see the
        module doc. True when ``target`` forwards ``new``'s tables; False (logged, recorded in
        the status) when the switch was refused or rolled back: the old data plane forwards
        the old config's tables, as before the reload."""
        assert self.director is not None and self.checker is not None
        old, opts = self.director, self.opts
        drain, feed = DrainState(opts.state_dir), FeedStatus(opts.state_dir)
        flag = drain.current()
        ours = flag is None or flag.get("owner") == SWITCH_OWNER  # an operator's drain stays
        t0 = time.monotonic()
        self._switch = record = {"from": old.dataplane, "to": target.dataplane, "state": "draining",
                                 "started_at": time.time()}
        self._write_status()
        logs.event(_log, "dataplane_switch_started", source=old.dataplane, target=target.dataplane,
                   drained_by_operator=not ours)

        def mark(state: str, **fields: object) -> None:
            record.update(state=state, **{k: round(v, 3) if isinstance(v, float) else v
                                          for k, v in fields.items()})
            self._write_status()

        stopped = False
        try:
            if ours:
                token = drain.drain(f"data-plane switch {old.dataplane} -> {target.dataplane}",
                                    owner=SWITCH_OWNER)
                if feed.running():
                    done = await asyncio.to_thread(feed.wait, withdrawal_confirmed(token),
                                                   opts.switch_timeout)
                    if done is None:
                        raise SwitchError(f"the BGP feed did not confirm the withdrawal within "
                                          f"{opts.switch_timeout:g} s ({feed.path})")
                else:
                    logs.event(_log, "dataplane_switch_no_feed", level=logging.WARNING,
                               detail="no BGP feed runs: nothing of ours is announced")
            mark("waiting for traffic to stop", withdrawn_s=time.monotonic() - t0)
            last_packet = await asyncio.to_thread(self._wait_quiet, old)
            mark("switching", traffic_stopped_s=last_packet - t0, idle_s=time.monotonic() - t0)
            async with self._swap_lock:
                stopped = True
                dark = time.monotonic()
                await asyncio.to_thread(old.stop)
                self.director = target
                await asyncio.to_thread(target.start)
                await asyncio.to_thread(self._build_and_swap, new, self.checker.view())
                why = await asyncio.to_thread(self._wait_ready, target)
                record["dark_s"] = round(time.monotonic() - dark, 3)
        except (GlbError, OSError) as exc:
            if stopped:
                await self._roll_back(old, target)
            if ours:
                drain.undrain()
            logs.event(_log, "dataplane_switch_failed", level=logging.ERROR, error=str(exc),
                       source=old.dataplane, target=target.dataplane, rolled_back=stopped)
            mark("failed", error=str(exc), seconds=time.monotonic() - t0)
            return False
        if ours:
            drain.undrain()
            mark("announcing", ready=why, ready_s=time.monotonic() - t0)
            if feed.running():
                seen = await asyncio.to_thread(
                    feed.wait, lambda st: undrain_seen(st) and bool(st.get("announced")), opts.switch_timeout)
                if seen is None:  # the feed decides; it says why in its status and log
                    logs.event(_log, "dataplane_switch_not_announced", level=logging.WARNING,
                               seconds=opts.switch_timeout, feed=str(feed.path))
        record.update(ready=why, seconds=round(time.monotonic() - t0, 3),
                      **({} if ours else {"note": "left drained: the drain flag is the operator's"}))
        # Logged before the status says done: whoever sees "done" (apply) finds the log line.
        logs.event(_log, "dataplane_switch_done", **{k: v for k, v in record.items() if k != "state"})
        mark("done")
        return True

    def _wait_quiet(self, director: DirectorDataPlane) -> float:
        """Block until no VIP packet has reached ``director`` for ``switch_quiet`` seconds and
        return when the last one came (monotonic). Raise SwitchError when packets still arrive
        after ``switch_timeout``: something other than our withdrawn routes sends VIP traffic
        here (a static route, a router that kept the path), and stopping would black-hole it."""
        opts = self.opts
        start = last_change = time.monotonic()
        seen = _vip_packets(director.counters())
        while True:
            time.sleep(min(0.1, opts.switch_quiet / 4))
            now, count = time.monotonic(), _vip_packets(director.counters())
            if count != seen:
                seen, last_change = count, now
            elif now - last_change >= opts.switch_quiet:
                return last_change
            if now - start > opts.switch_timeout:
                raise SwitchError(f"VIP packets still arrive {opts.switch_timeout:g} s after the withdrawal "
                                  "(a static route or a router that kept the path?): not stopping the "
                                  f"{director.dataplane} data plane under traffic")

    def _wait_ready(self, director: DirectorDataPlane) -> str:
        """Block until ``director`` passes the BGP feed's readiness check; its reason."""
        deadline = time.monotonic() + self.opts.switch_timeout
        while True:
            ok, why = director.ready()
            if ok:
                return why
            if time.monotonic() > deadline:
                raise SwitchError(f"the {director.dataplane} data plane is not ready after "
                                  f"{self.opts.switch_timeout:g} s: {why}")
            time.sleep(0.05)

    async def _roll_back(self, old: DirectorDataPlane, target: DirectorDataPlane) -> None:
        """The new data plane failed: stop it and put the old one back with the tables of the
        config it ran (still ``self.loaded``). Caller holds the swap lock."""
        assert self.checker is not None
        with contextlib.suppress(GlbError, OSError):
            await asyncio.to_thread(target.stop)
        self.director = old
        try:
            await asyncio.to_thread(old.start)
            await asyncio.to_thread(self._build_and_swap, self.loaded, self.checker.view())
        except (GlbError, OSError) as exc:  # the feed sees it not ready and keeps the VIPs withdrawn
            logs.event(_log, "dataplane_rollback_failed", level=logging.CRITICAL, error=str(exc),
                       dataplane=old.dataplane)

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
        # glb.yml's dataplane may have changed while no agent ran (a restart by the role that
        # installed the DPDK unit, a reboot with the old data plane's process left): the
        # other kind still forwards. Adopt it, and switch drained once up, as a reload would.
        other = make_director(self.loaded, me.name, settings, self.opts.state_dir,
                              dataplane="xdp" if self.director.dataplane == "dpdk" else "dpdk")
        switch_pending = (await asyncio.to_thread(other.ready))[0]
        if switch_pending:
            logs.event(_log, "dataplane_mismatch", running=other.dataplane,
                       configured=self.director.dataplane)
            self.director = other
        how = await asyncio.to_thread(self.director.start)
        logs.event(_log, "dataplane_started", how=how, interface=settings.interface,
                   pin_dir=str(settings.pin_dir))
        exporter = None
        self.checker = Checker(targets_from_config(self.loaded, me), on_change=self._on_health,
                               state_file=self.opts.health_file)
        try:
            async with self.checker:
                await self.swap()
                flag = DrainState(self.opts.state_dir).current()
                if flag is not None and flag.get("owner") == SWITCH_OWNER:
                    # A switch was cut short (crash, kill) after its drain: the data plane glb.yml
                    # names now runs with its tables, and the feed announces once it is ready.
                    DrainState(self.opts.state_dir).undrain()
                    logs.event(_log, "dataplane_switch_recovered", reason=flag.get("reason", ""))
                if self.opts.metrics_port is not None:
                    exporter = Exporter(GlbCollector(
                        counters=lambda: counters_from_director(self.director.counters()),
                        health=self.checker.view, tables=lambda: self.builds,
                        bgp=self._bgp_provider(me)),
                        address=self.opts.metrics_address, port=self.opts.metrics_port)
                    exporter.start()
                notify("READY=1")
                logs.event(_log, "director_ready", generation=self.generation)
                if switch_pending:
                    self._reload.set()  # the reload finds the other dataplane in glb.yml: a switch
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


def _vip_packets(counters: dict[str, dict[str, int]]) -> int:
    """Every packet a director saw for a service (any reason): VIP traffic still arriving."""
    return sum(v for name, cells in counters.items() if name != "_unmatched"
               for k, v in cells.items() if k.endswith("_packets"))


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
