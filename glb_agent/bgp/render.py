"""exabgp.conf for one director: one neighbor per BGP peer and the readiness-gated feed.

The config carries no routes: everything is announced at run time by the feed, so a
director whose data plane is not ready announces nothing even right after a restart.
"""

from __future__ import annotations

import re

from glb_agent.bgp.prefixes import session_prefixes
from glb_agent.config.hosts import director_named
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import BgpPeer, Director
from glb_agent.errors import InputError
from glb_agent.render.templates import render

# ExaBGP splits `run` on whitespace and ends it at ';': arguments must avoid both.
_SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def director_peers(loaded: LoadedConfig, director: Director) -> list[BgpPeer]:
    """The peers this director sessions with: its bgp_peers, or every peer if unset."""
    peers = loaded.config.bgp.peers
    if director.bgp_peers is None:
        return list(peers)
    wanted = set(director.bgp_peers)
    return [p for p in peers if p.name in wanted]


def _run_line(feed_command: list[str]) -> str:
    if not feed_command:
        raise InputError("the feed command is empty")
    if not feed_command[0].startswith("/"):
        raise InputError(f"the feed command must start with an absolute path, not {feed_command[0]!r}")
    for arg in feed_command:
        if not _SAFE_ARG.match(arg):
            raise InputError(f"feed command argument {arg!r} contains characters ExaBGP cannot pass through")
    return " ".join(feed_command)


def render_exabgp_conf(loaded: LoadedConfig, director: str, feed_command: list[str]) -> str:
    """The exabgp.conf text for ``director``; identical input gives identical bytes."""
    cfg = loaded.config
    found = director_named(loaded, director)
    peers = director_peers(loaded, found)
    if not peers:
        raise InputError(f"director {director} has no BGP peers: it could never announce")
    prefixes, _ = session_prefixes(cfg)
    families = [name for version, name in ((4, "ipv4"), (6, "ipv6"))
                if any(p.version == version for p in prefixes)] or ["ipv4"]
    return render(
        "exabgp.conf.j2",
        director=found,
        peers=peers,
        router_id=found.router_id or found.address,
        local_asn=cfg.bgp.local_asn,
        hold_time=cfg.bgp.hold_time,
        families=families,
        run=_run_line(feed_command),
    )
