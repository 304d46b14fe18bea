"""exabgp.conf for one director: one neighbor per BGP peer and the readiness-gated feed.

The config carries no routes: everything is announced at run time by the feed, so a
director whose data plane is not ready announces nothing even right after a restart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from glb_agent.config.hosts import this_director
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import BgpPeer, Director
from glb_agent.errors import InputError
from glb_agent.render.templates import render

# ExaBGP splits `run` on whitespace and ends it at ';': arguments must avoid both.
_SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def director_peers(loaded: LoadedConfig, director: Director) -> list[BgpPeer]:
    """The peers this director sessions with: its bgp_peers, or every peer if unset."""
    return loaded.config.peers_of(director)


@dataclass(frozen=True)
class Session:
    """One exabgp.conf neighbor: an IPv4 peer carries IPv4 unicast from ``address``, an
    IPv6 peer IPv6 unicast from ``address6`` -- never both families on one session, because
    "next-hop self" must be an address of the session's own family (see prefixes.py)."""

    peer: BgpPeer
    local_address: str
    family: str
    # TCP-MD5 password (from the peer's password_file or password_env) and where it came from.
    password: str | None = None
    password_origin: str = ""


def director_sessions(loaded: LoadedConfig, director: Director) -> list[Session]:
    """This director's sessions; IPv6 peers without an address6 were refused by validation."""
    out = []
    for peer in director_peers(loaded, director):
        password = loaded.peer_password(peer.name)
        origin = peer.password_file or f"${peer.password_env}" if password else ""
        if peer.address.version == 6:
            if director.address6 is None:
                raise InputError(f"director {director.name} has no address6 for IPv6 peer {peer.name}")
            out.append(Session(peer, str(director.address6), "ipv6", password, origin))
        else:
            out.append(Session(peer, str(director.address), "ipv4", password, origin))
    return out


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
    found = this_director(loaded, director, strict=True)
    sessions = director_sessions(loaded, found)
    if not sessions:
        raise InputError(f"director {director} has no BGP peers: it could never announce")
    return render(
        "exabgp.conf.j2",
        director=found,
        sessions=sessions,
        router_id=found.router_id or found.address,
        local_asn=cfg.bgp.local_asn,
        hold_time=cfg.bgp.hold_time,
        run=_run_line(feed_command),
    )
