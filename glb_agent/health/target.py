"""What to probe: one target per (service, backend), built from the validated config.

A backend listed in two services is two targets: the services may check it differently
(ports, paths, intervals), and each service's table needs its own verdict.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Coroutine
from dataclasses import dataclass

from glb_agent.config.hosts import this_director
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import Director, HealthCheck
from glb_agent.health.gue import GueProber
from glb_agent.health.probes import ProbeResult, http_probe, tcp_probe

Key = tuple[str, ipaddress.IPv4Address]


@dataclass(frozen=True)
class Target:
    """One backend of one service and how to check it.

    ``source`` is the director address GUE probes come from (outer and inner source);
    ``inner`` is the inner echo destination, the backend itself unless a VIP is wanted.
    """

    service: str
    address: ipaddress.IPv4Address
    check: HealthCheck
    source: ipaddress.IPv4Address | None = None
    inner: ipaddress.IPv4Address | None = None

    @property
    def key(self) -> Key:
        return (self.service, self.address)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in ("http", "tcp", "gue") if getattr(self.check, k) is not None)


def targets_from_config(loaded: LoadedConfig, director: Director | None = None) -> list[Target]:
    """Every backend of every service, in YAML order, with its merged healthcheck.

    Without ``director`` the probes come from the local director, else the first one
    (lenient: ``health check`` also runs from a workstation, see config/hosts.py).
    """
    source = (director or this_director(loaded, strict=False)).outer_source
    return [
        Target(svc.name, b.address, svc.healthcheck_for(b), source)
        for svc in loaded.config.services
        for b in svc.backends
    ]


async def _unavailable(kind: str, why: str) -> ProbeResult:
    return ProbeResult(kind, False, f"{kind} probe unavailable: {why}", 0.0)


async def probe_target(target: Target, gue: GueProber | None) -> tuple[ProbeResult, ...]:
    """Run every configured check of ``target`` concurrently; each is bounded by the timeout.

    A target with no checks configured has nothing that could fail and counts as healthy.
    """
    hc, timeout = target.check, target.check.timeout
    probes: list[Coroutine[object, object, ProbeResult]] = []
    if hc.http is not None:
        probes.append(http_probe(target.address, hc.http.port, hc.http.path, hc.http.status, timeout))
    if hc.tcp is not None:
        probes.append(tcp_probe(target.address, hc.tcp.port, timeout))
    if hc.gue is not None:
        if target.source is None:
            probes.append(_unavailable("gue", "no director source address"))
        elif gue is None:
            probes.append(_unavailable("gue", "no raw socket (needs root)"))
        else:
            probes.append(gue.probe(target.source, target.address, hc.gue.port, timeout, target.inner))
    if not probes:
        return ()
    results = await asyncio.gather(*probes, return_exceptions=True)
    out = []
    for kind, res in zip(target.kinds, results, strict=True):
        if isinstance(res, asyncio.CancelledError):
            raise res
        if isinstance(res, BaseException):
            out.append(ProbeResult(kind, False, f"probe error: {res!r}", 0.0))
        else:
            out.append(res)
    return tuple(out)
