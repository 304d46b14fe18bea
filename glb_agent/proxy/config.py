"""From glb.yml (``glb_agent.config`` models) to the proxy data plane's ``ProxySettings``.

Kept apart from the data plane so that the loader and its tests never depend on the YAML
schema; this is the only place that knows both.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from glb_agent.config.hosts import this_proxy
from glb_agent.dataplane.proxy import ProxySettings
from glb_agent.errors import InputError


def proxy_settings(cfg: Any, name: str | None = None, *,
                   local_addresses: set[ipaddress.IPv4Address] | None = None,
                   pin_dir: Path | None = None) -> ProxySettings:
    """Settings for proxy ``name`` of config ``cfg`` (a GlbConfig or a LoadedConfig).

    Without ``name`` the proxy is the one whose address is configured on this host.
    Allowed directors: the proxy's ``directors`` list (default every director), by the
    address their GUE comes from (``source_ip`` or ``address``). Peers: every other proxy
    of the fleet — any of them may forward us a second chance. VIPs: those of the services
    that list this proxy as a backend; their ``cidrs`` become VIP prefixes.
    """
    me = this_proxy(cfg, name, strict=True,
                    local=None if local_addresses is None else frozenset(local_addresses))
    cfg = getattr(cfg, "config", cfg)
    allowed = set(me.directors) if me.directors is not None else None
    unknown = (allowed or set()) - {d.name for d in cfg.directors}
    if unknown:
        raise InputError(f"proxy {me.name}: unknown directors {sorted(unknown)}")
    directors = tuple(d.outer_source for d in cfg.directors if allowed is None or d.name in allowed)
    peers = tuple(p.address for p in cfg.proxies if p.name != me.name)
    vips: list[Any] = []
    prefixes: list[Any] = []
    for svc in cfg.services:
        if any(b.address == me.address for b in svc.backends):
            vips.extend(v for v in svc.vips if v not in vips)
            prefixes.extend(c for c in svc.cidrs if c not in prefixes)
    return ProxySettings(
        interface=me.interface,
        address=me.address,
        allowed_senders=directors,
        peers=peers,
        vips=tuple(vips),
        vip_prefixes=tuple(prefixes),
        gue_port=cfg.fleet.gue_port,
        pin_dir=pin_dir,  # type: ignore[arg-type]  # None selects the default
    )
