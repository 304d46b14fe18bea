"""The lab router's BIRD 2 config, from the same glb.yml the directors use.

Production routers are not configured by glb-agent, but the lab and the tests need a
router that behaves like a correctly configured one (ECMP across directors, VIP-only
import filter, the fleet's hold time); docs/bgp.md lists the same points for real gear.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from glb_agent.bgp.prefixes import fleet_prefixes
from glb_agent.bgp.render import director_peers
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import Bfd, BgpPeer
from glb_agent.errors import InputError

# glb_agent/routers is a symlink to the repository's bgp/ (installed as package data), so
# the lab works from a checkout and from an installed wheel alike.
TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "routers"


@dataclass(frozen=True)
class RouterDirector:
    """One BGP session as the router sees it: a director's address of one IP version."""

    name: str
    proto: str
    address: str
    version: int


@cache
def _env(directory: Path) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(directory)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


def _peer(loaded: LoadedConfig, name: str) -> BgpPeer:
    for peer in loaded.config.bgp.peers:
        if peer.name == name:
            return peer
    raise InputError(f"no BGP peer named {name!r} in {loaded.source}")


def _accept(loaded: LoadedConfig, accept: dict[int, list[str]] | None) -> dict[int, list[str]]:
    if accept is None:
        prefixes = fleet_prefixes(loaded.config)
        accept = {v: [str(p) for p in prefixes if p.version == v] for v in (4, 6)}
    return {v: list(accept.get(v, [])) for v in (4, 6)}


def _directors(loaded: LoadedConfig, peers: dict[int, BgpPeer]) -> list[RouterDirector]:
    """One session per (director, IP version of this router) whose bgp_peers include that
    peer entry; IPv6 sessions go to the director's address6."""
    out = []
    for version, peer in sorted(peers.items()):
        for d in loaded.config.directors:
            if not any(p.name == peer.name for p in director_peers(loaded, d)):
                continue
            address = d.address if version == 4 else d.address6
            if address is None:
                continue  # refused by validation; never render a session that cannot open
            proto = "d_" + re.sub(r"[^A-Za-z0-9_]", "_", d.name) + ("" if version == 4 else "_v6")
            out.append(RouterDirector(d.name, proto, str(address), version))
    return out


@dataclass(frozen=True)
class SessionSecurity:
    """What one router peer entry asks of its sessions: BFD timers, TCP-MD5, GTSM."""

    bfd: Bfd
    password: str | None
    ttl_security: bool


def _security(loaded: LoadedConfig, router: Router) -> dict[int, SessionSecurity]:
    bgp = loaded.config.bgp
    return {v: SessionSecurity(bgp.bfd_for(p), loaded.peer_password(p.name), p.ttl_security)
            for v, p in router.peers.items()}


@dataclass(frozen=True)
class Router:
    """The router's peer entries of glb.yml, at most one per IP version, one ASN."""

    name: str
    asn: int
    peers: dict[int, BgpPeer]
    router_id: ipaddress.IPv4Address

    @property
    def versions(self) -> list[int]:
        return sorted(self.peers)


def _router(loaded: LoadedConfig, peer: str | Sequence[str],
            router_id: str | None = None) -> Router:
    names = [peer] if isinstance(peer, str) else list(peer)
    found = [_peer(loaded, n) for n in names]
    if not found:
        raise InputError("no router peer given")
    by_version: dict[int, BgpPeer] = {}
    for p in found:
        if p.address.version in by_version:
            raise InputError(f"peers {by_version[p.address.version].name} and {p.name} are both "
                             f"IPv{p.address.version}: one router has one address per IP version")
        by_version[p.address.version] = p
    if len({p.asn for p in found}) != 1:
        raise InputError(f"peers {', '.join(names)} have different ASNs: they are not one router")
    if router_id is None:
        if 4 not in by_version:
            raise InputError(f"router {names[0]}: no IPv4 peer address to use as router id; pass router_id")
        rid = by_version[4].address
    else:
        rid = ipaddress.IPv4Address(router_id)
    return Router(found[0].name, found[0].asn, by_version, rid)


def render_bird_conf(loaded: LoadedConfig, peer: str | Sequence[str], *, log: str | None = "stderr",
                     accept: dict[int, list[str]] | None = None, max_paths: int = 16,
                     connect_retry: int = 5, error_wait_max: int = 30, router_id: str | None = None,
                     template_dir: Path = TEMPLATE_DIR) -> str:
    """BIRD 2 config for the router whose glb.yml peer entries are ``peer`` (a name, or the
    names of its IPv4 and IPv6 entries: one session per director and IP version).

    ``accept`` overrides the import filter per IP version with BIRD prefix patterns
    (e.g. ``{4: ["203.0.113.0/24{32,32}"]}``); by default exactly the fleet's VIPs and
    service cidrs are accepted. The router sessions with every director whose bgp_peers
    name it, using the fleet's hold time.
    """
    cfg = loaded.config
    router = _router(loaded, peer, router_id)
    nets = _accept(loaded, accept)
    hold = cfg.bgp.hold_time
    security = _security(loaded, router)
    return _env(template_dir).get_template("bird.conf.j2").render(
        security=security, bfd_any=any(s.bfd.enabled for s in security.values()),
        router=router, router_id=router.router_id, log=log,
        accept=[(v, nets[v]) for v in router.versions], max_paths=max_paths,
        hold_time=hold, keepalive=cfg.bgp.effective_keepalive if hold else 0,
        connect_retry=connect_retry, error_wait_max=error_wait_max,
        local_asn=cfg.bgp.local_asn, directors=_directors(loaded, router.peers),
    )


def render_frr_conf(loaded: LoadedConfig, peer: str | Sequence[str], *,
                    accept: dict[int, list[str]] | None = None, max_paths: int = 16,
                    connect_retry: int = 5, router_id: str | None = None,
                    template_dir: Path = TEMPLATE_DIR) -> str:
    """FRR (bgpd/zebra, integrated config) for the router ``peer``; ``accept`` takes FRR
    prefix-list entries (e.g. ``"203.0.113.0/24 ge 32"``), otherwise as render_bird_conf."""
    cfg = loaded.config
    router = _router(loaded, peer, router_id)
    nets = _accept(loaded, accept)
    hold = cfg.bgp.hold_time
    return _env(template_dir).get_template("frr.conf.j2").render(
        security=_security(loaded, router),
        router=router, router_id=router.router_id,
        accept={v: nets[v] for v in router.versions}, max_paths=max_paths,
        hold_time=hold, keepalive=cfg.bgp.effective_keepalive if hold else 0,
        connect_retry=connect_retry, local_asn=cfg.bgp.local_asn,
        directors=_directors(loaded, router.peers),
    )
