"""Prometheus metrics of a director, read at scrape time from the components that own them.

Nothing is copied into prometheus_client objects ahead of time: the data plane's per-CPU
counters, the health verdicts, table build times and the BGP feed state are each read
through a *provider* callable when Prometheus scrapes. The numbers are therefore never
stale, no thread keeps them in sync, and a component that is not running (no director
program loaded yet, ExaBGP down) shows up as ``glb_exporter_provider_up{provider} 0``
instead of breaking the whole scrape.

Provider shapes (the contract with the other components):

* counters: ``() -> Iterable[TrafficCounter]`` -- one entry per (service, reason) with
  packets and bytes since the program was loaded. ``counters_from_mapping`` adapts the
  director loader's ``{(service, reason): (packets, bytes)}``. Reasons are the data
  plane's (``forwarded``, ``pass_not_vip``, ``drop_too_big``, ...); the action is the
  reason's first word (forwarded -> forward, pass_* -> pass, drop_* -> drop).
  ``counters_from_director`` adapts ``DirectorDataPlane.counters()`` (dataplane/director.py).
* health: ``() -> Mapping[(service, IPv4Address), bool]`` (``Checker.view``).
* tables: ``() -> Iterable[TableBuild]`` -- last build time per service, rows at risk in
  the last config change and each backend's share of rows where it is first.
* bgp: ``() -> BgpState`` (``bgp_from_status_file`` reads the feed's status file, and the
  BFD speaker's sessions live through its control socket).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from glb_agent import logs

DEFAULT_ADDRESS = "127.0.0.1"  # metrics reveal topology; expose wider on purpose only
DEFAULT_PORT = 9472
_log = logs.get("metrics")


@dataclass(frozen=True)
class TrafficCounter:
    """Data-plane packets/bytes for one (service, reason); service "" = no service matched."""

    service: str
    reason: str
    packets: int
    bytes: int

    @property
    def action(self) -> str:
        head = self.reason.split("_", 1)[0]
        return "forward" if head == "forwarded" else head


@dataclass(frozen=True)
class TableBuild:
    """How long the last forwarding-table build of a service took, and when it went live."""

    service: str
    seconds: float
    swapped_at: float | None = None  # unix time
    rows_at_risk: int | None = None  # rows the last config change put at risk (table/diff.py)
    first_share: Mapping[str, float] = field(default_factory=dict)  # backend -> share of rows first


@dataclass(frozen=True)
class BgpState:
    """What the BGP feed last confirmed: prefix -> announced, plus readiness and drain."""

    announced: Mapping[str, bool] = field(default_factory=dict)
    ready: bool | None = None
    drained: bool | None = None
    updated: float | None = None  # unix time of the feed's last status write
    # BGP session per peer name: True when ExaBGP reported it up (neighbor-changes).
    sessions: Mapping[str, bool] = field(default_factory=dict)
    # BFD session state per peer name ("Up", "Down", "Init", ...; "Down" while the
    # director's BFD speaker is not running), and whether it runs; None: BFD not configured.
    bfd: Mapping[str, str] = field(default_factory=dict)
    bfd_running: bool | None = None


CountersProvider = Callable[[], Iterable[TrafficCounter]]
HealthProvider = Callable[[], Mapping[tuple[str, ipaddress.IPv4Address], bool]]
TablesProvider = Callable[[], Iterable[TableBuild]]
BgpProvider = Callable[[], BgpState]


def counters_from_mapping(raw: Mapping[tuple[str, str], tuple[int, int]]) -> list[TrafficCounter]:
    """Adapt ``{(service, reason): (packets, bytes)}`` (the director loader's shape)."""
    return [TrafficCounter(svc or "", reason, int(p), int(b)) for (svc, reason), (p, b) in raw.items()]


UNMATCHED = "_unmatched"  # the director loader's name for traffic no service matched


def counters_from_director(raw: Mapping[str, Mapping[str, int]]) -> list[TrafficCounter]:
    """Adapt ``DirectorDataPlane.counters()``: ``{service | "_unmatched": {"<reason>_packets": n,
    "<reason>_bytes": n}}`` (glb_agent/dataplane/director.py)."""
    out = []
    for name, cells in raw.items():
        service = "" if name == UNMATCHED else name
        reasons = sorted({k.rsplit("_", 1)[0] for k in cells if k.endswith(("_packets", "_bytes"))})
        for reason in reasons:
            packets, nbytes = cells.get(f"{reason}_packets", 0), cells.get(f"{reason}_bytes", 0)
            out.append(TrafficCounter(service, reason, int(packets), int(nbytes)))
    return out


BfdProvider = Callable[[], "tuple[Mapping[str, str], bool] | None"]


def bgp_from_status_file(path: str | Path, prefixes: Iterable[str] = (),
                         drain_file: str | Path | None = None, peers: Iterable[str] = (),
                         bfd: BfdProvider | None = None) -> BgpProvider:
    """A provider reading the feed's status file (``glb_agent/bgp/state.py`` writes it).

    ``prefixes`` are every prefix the config wants announced and ``peers`` every BGP peer
    of the director, so a withdrawn prefix or a down session reports 0 rather than vanishing
    from the scrape. ``bfd`` returns ``({peer: state}, running)`` read live from the BFD
    speaker (``glb_agent.bgp.bfd.peer_states``), or None when BFD is not configured.
    """
    wanted = list(prefixes)
    names = list(peers)

    def provider() -> BgpState:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        announced = {p: False for p in wanted}
        announced.update({str(p): True for p in doc.get("announced", [])})
        drained = Path(drain_file).exists() if drain_file is not None else None
        ready = doc.get("ready")
        sessions = {n: False for n in names}
        sessions.update({str(n): s.get("state") == "up" for n, s in (doc.get("sessions") or {}).items()})
        live = bfd() if bfd is not None else None
        return BgpState(announced, ready if isinstance(ready, bool) else None, drained,
                        doc.get("updated"), sessions, live[0] if live else {},
                        live[1] if live else None)

    return provider


class GlbCollector(Collector):
    """A prometheus_client collector that calls the providers at every scrape."""

    def __init__(self, counters: CountersProvider | None = None, health: HealthProvider | None = None,
                 tables: TablesProvider | None = None, bgp: BgpProvider | None = None) -> None:
        self.providers: dict[str, Callable[[], object] | None] = {
            "counters": counters, "health": health, "tables": tables, "bgp": bgp,
        }

    def describe(self) -> Iterable[Metric]:
        return []  # metric families depend on providers; skip the registry's dry-run collect

    def _call(self, name: str, up: GaugeMetricFamily) -> object | None:
        provider = self.providers[name]
        if provider is None:
            return None
        try:
            value = provider()
            if name in ("counters", "tables"):  # materialise iterators inside the try
                value = list(value)  # type: ignore[call-overload]
        except Exception as exc:
            logs.event(_log, "metrics_provider_failed", logging.WARNING, provider=name, error=repr(exc))
            up.add_metric([name], 0)
            return None
        up.add_metric([name], 1)
        return value

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("glb_exporter_provider_up",
                               "1 if the provider answered at this scrape, 0 if it failed",
                               labels=["provider"])
        counters = self._call("counters", up)
        if counters is not None:
            yield from self._traffic(counters)  # type: ignore[arg-type]
        health = self._call("health", up)
        if health is not None:
            yield from self._health(health)  # type: ignore[arg-type]
        tables = self._call("tables", up)
        if tables is not None:
            yield from self._tables(tables)  # type: ignore[arg-type]
        bgp = self._call("bgp", up)
        if bgp is not None:
            yield from self._bgp(bgp)  # type: ignore[arg-type]
        yield up

    @staticmethod
    def _traffic(counters: list[TrafficCounter]) -> Iterator[Metric]:
        packets = CounterMetricFamily("glb_director_packets", "packets seen by the director data plane",
                                      labels=["service", "action"])
        nbytes = CounterMetricFamily("glb_director_bytes", "bytes seen by the director data plane",
                                     labels=["service", "action"])
        drops = CounterMetricFamily("glb_director_drops", "packets dropped by the director, by reason",
                                    labels=["service", "reason"])
        by_action: dict[tuple[str, str], list[int]] = {}
        by_drop: dict[tuple[str, str], int] = {}
        for c in counters:
            acc = by_action.setdefault((c.service, c.action), [0, 0])
            acc[0] += c.packets
            acc[1] += c.bytes
            if c.action == "drop":
                reason = c.reason.removeprefix("drop_")
                by_drop[(c.service, reason)] = by_drop.get((c.service, reason), 0) + c.packets
        for labels, (p, b) in sorted(by_action.items()):
            packets.add_metric(list(labels), p)
            nbytes.add_metric(list(labels), b)
        for labels, p in sorted(by_drop.items()):
            drops.add_metric(list(labels), p)
        yield from (packets, nbytes, drops)

    @staticmethod
    def _health(view: Mapping[tuple[str, ipaddress.IPv4Address], bool]) -> Iterator[Metric]:
        healthy = GaugeMetricFamily("glb_backend_healthy", "1 if the health checker considers the backend up",
                                    labels=["service", "backend"])
        for (svc, addr), ok in sorted(view.items(), key=lambda kv: (kv[0][0], int(kv[0][1]))):
            healthy.add_metric([svc, str(addr)], 1 if ok else 0)
        yield healthy

    @staticmethod
    def _tables(builds: list[TableBuild]) -> Iterator[Metric]:
        seconds = GaugeMetricFamily("glb_table_generation_seconds",
                                    "seconds the last forwarding-table build took", labels=["service"])
        swapped = GaugeMetricFamily("glb_table_swap_timestamp_seconds",
                                    "unix time the current table went live", labels=["service"])
        risk = GaugeMetricFamily("glb_table_rows_at_risk",
                                 "rows whose connection-holding proxy the last config change (start, "
                                 "reload) took out of the row (second chance cannot reach it)",
                                 labels=["service"])
        first = GaugeMetricFamily("glb_backend_first_share",
                                  "share of the table's rows that send new flows to the backend first",
                                  labels=["service", "backend"])
        for b in builds:
            seconds.add_metric([b.service], b.seconds)
            if b.swapped_at is not None:
                swapped.add_metric([b.service], b.swapped_at)
            if b.rows_at_risk is not None:
                risk.add_metric([b.service], b.rows_at_risk)
            for backend, share in sorted(b.first_share.items()):
                first.add_metric([b.service, backend], share)
        yield from (seconds, swapped, risk, first)

    @staticmethod
    def _bgp(state: BgpState) -> Iterator[Metric]:
        announced = GaugeMetricFamily("glb_bgp_prefix_announced",
                                      "1 if the feed has announced the prefix (ExaBGP acknowledged)",
                                      labels=["prefix"])
        for prefix, on in sorted(state.announced.items()):
            announced.add_metric([prefix], 1 if on else 0)
        yield announced
        if state.ready is not None:
            yield GaugeMetricFamily("glb_bgp_dataplane_ready", "1 if the feed saw the data plane ready",
                                    value=1 if state.ready else 0)
        if state.drained is not None:
            yield GaugeMetricFamily("glb_bgp_drained", "1 if this director is drained by an operator",
                                    value=1 if state.drained else 0)
        if state.updated is not None:
            yield GaugeMetricFamily("glb_bgp_status_age_seconds", "seconds since the feed last wrote status",
                                    value=max(0.0, time.time() - float(state.updated)))
        sessions = GaugeMetricFamily("glb_bgp_session_up", "1 if the BGP session to the peer is established",
                                     labels=["peer"])
        for peer, on in sorted(state.sessions.items()):
            sessions.add_metric([peer], 1 if on else 0)
        yield sessions
        if state.bfd_running is not None:
            yield GaugeMetricFamily("glb_bfd_running", "1 if the BFD speaker runs (data plane ready)",
                                    value=1 if state.bfd_running else 0)
            up = GaugeMetricFamily("glb_bfd_session_up", "1 if the BFD session to the peer is Up",
                                   labels=["peer"])
            detail = GaugeMetricFamily("glb_bfd_session_state", "1 for the BFD session's current state",
                                       labels=["peer", "state"])
            for peer, st in sorted(state.bfd.items()):
                up.add_metric([peer], 1 if st == "Up" else 0)
                detail.add_metric([peer, st], 1)
            yield from (up, detail)


@dataclass
class Exporter:
    """The HTTP endpoint (``/metrics``); bound to 127.0.0.1 unless told otherwise."""

    collector: GlbCollector
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=False))
    _server: object | None = None
    _thread: object | None = None

    def start(self) -> int:
        """Serve in a daemon thread; returns the bound port (``port=0`` picks a free one)."""
        self.registry.register(self.collector)
        server, thread = start_http_server(self.port, addr=self.address, registry=self.registry)
        self._server, self._thread = server, thread
        self.port = server.server_address[1]
        logs.event(_log, "metrics_exporter_started", address=self.address, port=self.port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]
            self._thread.join(timeout=5)  # type: ignore[attr-defined]
            self.registry.unregister(self.collector)
            self._server = self._thread = None

    def __enter__(self) -> Exporter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
