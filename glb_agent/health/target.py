"""What to probe: one target per (service, backend), built from the validated config.

A backend listed in two services is two targets: the services may check it differently
(ports, paths, intervals), and each service's table needs its own verdict.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from glb_agent.config.hosts import this_director
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import Director, HealthCheck

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
