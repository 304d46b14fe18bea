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


def session_prefixes(cfg: GlbConfig) -> tuple[list[Prefix], list[Prefix]]:
    """(announceable, not announceable) over the directors' BGP sessions.

    Sessions start from the director's IPv4 address, so only IPv4 NLRI can carry a
    usable next hop: "next-hop self" is an IPv4 address, and ExaBGP 5.0 cannot negotiate
    RFC 8950 (IPv6 NLRI with an IPv4 next hop) -- it sends an empty capability that FRR
    rejects. IPv6 VIPs need an IPv6 session from an IPv6 director address (not modelled
    yet); until then they are reported, not announced.
    """
    every = announced_prefixes(cfg)
    return [p for p in every if p.version == 4], [p for p in every if p.version != 4]
