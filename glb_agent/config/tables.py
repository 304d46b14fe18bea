"""Turn the validated config into forwarding-table specs, the builder's input.

Keys derived from the fleet secret depend only on the secret and the service name, so
every director computes the same table with no shared state, and renaming the fleet or
reordering services does not reshuffle anyone's rows.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping

from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import Service
from glb_agent.table.spec import Backend, Bind, TableSpec

HealthView = Mapping[tuple[str, ipaddress.IPv4Address], bool]


def derive_key(secret: bytes, service: str, purpose: str) -> bytes:
    """16 bytes from HMAC-SHA256(secret, "glb/v1/<purpose>/<service>")."""
    msg = f"glb/v1/{purpose}/{service}".encode()
    return hmac.new(secret, msg, hashlib.sha256).digest()[:16]


def service_keys(loaded: LoadedConfig, svc: Service) -> tuple[bytes, bytes]:
    """(hash_key, seed) of ``svc``: explicit in the YAML, else derived from the secret."""
    secret = loaded.secret
    keys = []
    for purpose in ("hash_key", "seed"):
        explicit = getattr(svc, purpose)
        if explicit is not None:
            keys.append(bytes.fromhex(explicit))
        else:
            assert secret is not None, "checks.py guarantees a secret when a key is missing"
            keys.append(derive_key(secret, svc.name, purpose))
    return keys[0], keys[1]


def service_binds(svc: Service) -> tuple[Bind, ...]:
    nets = [ipaddress.ip_network(v) for v in svc.vips] + list(svc.cidrs)
    return tuple(Bind(net, svc.protocol, p.start, p.end) for net in nets for p in svc.ports)


def table_specs(loaded: LoadedConfig, health: HealthView | None = None) -> list[TableSpec]:
    """One spec per service, backends in YAML order; ``health`` defaults to all healthy.
    Every table takes the fleet's row semantics and K (fleet.table_semantics/_candidates):
    directors must agree on them as on the keys."""
    fleet = loaded.config.fleet
    candidates = 2 if fleet.table_semantics == "upstream" else fleet.table_candidates
    specs = []
    for svc in loaded.config.services:
        hash_key, seed = service_keys(loaded, svc)
        backends = []
        for b in svc.backends:
            hc = svc.healthcheck_for(b)
            checks = tuple((k, getattr(hc, k).port) for k in ("http", "gue") if getattr(hc, k))
            healthy = True if health is None else health.get((svc.name, b.address), True)
            backends.append(Backend(b.address, b.state, healthy, checks))
        specs.append(TableSpec(svc.name, hash_key, seed, service_binds(svc), tuple(backends),
                               semantics=fleet.table_semantics, candidates=candidates))
    return specs
