"""Which prefixes a director announces: every service's VIPs (as host routes) and cidrs."""

from __future__ import annotations

import ipaddress

from glb_agent.config.model import Director, GlbConfig

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


def session_prefixes(cfg: GlbConfig, director: Director) -> tuple[list[Prefix], list[Prefix]]:
    """(announceable, not announceable) over ``director``'s BGP sessions.

    Each IP version rides its own sessions: IPv4 prefixes the IPv4 peers (next hop self =
    ``address``), IPv6 prefixes the IPv6 peers (session from and next hop self = ``address6``).
    RFC 8950 (IPv6 NLRI with an IPv4 next hop over an IPv4 session) would avoid the second
    session, but ExaBGP 5.0 cannot negotiate it -- it sends an empty extended-next-hop
    capability that FRR rejects -- so a director without address6 or without an IPv6 peer
    reports its IPv6 prefixes instead of announcing them (``glb-agent validate`` warns).
    """
    versions = cfg.session_versions(director)
    every = announced_prefixes(cfg)
    return [p for p in every if p.version in versions], [p for p in every if p.version not in versions]


def fleet_prefixes(cfg: GlbConfig) -> list[Prefix]:
    """Prefixes at least one director can announce: what a router should accept."""
    versions = set().union(*(cfg.session_versions(d) for d in cfg.directors))
    return [p for p in announced_prefixes(cfg) if p.version in versions]
