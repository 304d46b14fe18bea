"""Which prefixes a director announces: every service's VIPs (as host routes) and cidrs."""

from __future__ import annotations

import ipaddress

from glb_agent.config.model import GlbConfig

Prefix = ipaddress.IPv4Network | ipaddress.IPv6Network


def announced_prefixes(cfg: GlbConfig) -> list[Prefix]:
    """Every VIP as /32 or /128 plus every service cidr, deduplicated, IPv4 first.

    All directors serve all services (GLB tables are identical fleet-wide), so the set does
    not depend on the director; a stable order keeps rendered files and logs diffable.
    """
    found: set[Prefix] = set()
    for svc in cfg.services:
        found.update(ipaddress.ip_network(vip) for vip in svc.vips)
        found.update(svc.cidrs)
    return sorted(found, key=lambda net: (net.version, net))
