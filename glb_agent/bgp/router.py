"""The lab router's BIRD 2 config, from the same glb.yml the directors use.

Production routers are not configured by glb-agent, but the lab and the tests need a
router that behaves like a correctly configured one (ECMP across directors, VIP-only
import filter, the fleet's hold time); docs/bgp.md lists the same points for real gear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from glb_agent.bgp.prefixes import session_prefixes
from glb_agent.bgp.render import director_peers
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import BgpPeer
from glb_agent.errors import InputError

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "bgp"


@dataclass(frozen=True)
class RouterDirector:
    name: str
    proto: str
    address: str


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
        prefixes, _ = session_prefixes(loaded.config)
        accept = {v: [str(p) for p in prefixes if p.version == v] for v in (4, 6)}
    return {v: list(accept.get(v, [])) for v in (4, 6)}


def _directors(loaded: LoadedConfig, peer: str) -> list[RouterDirector]:
    """Every director whose bgp_peers (or the default: all peers) include ``peer``."""
    return [
        RouterDirector(d.name, "d_" + re.sub(r"[^A-Za-z0-9_]", "_", d.name), str(d.address))
        for d in loaded.config.directors
        if any(p.name == peer for p in director_peers(loaded, d))
    ]


def _router(loaded: LoadedConfig, peer: str) -> BgpPeer:
    router = _peer(loaded, peer)
    if router.address.version != 4:
        raise InputError(f"peer {peer}: the lab router templates need an IPv4 peer address")
    return router


def render_bird_conf(loaded: LoadedConfig, peer: str, *, log: str | None = "stderr",
                     accept: dict[int, list[str]] | None = None, max_paths: int = 16,
                     connect_retry: int = 5, error_wait_max: int = 30,
                     template_dir: Path = TEMPLATE_DIR) -> str:
    """BIRD 2 config for router ``peer`` of glb.yml.

    ``accept`` overrides the import filter per IP version with BIRD prefix patterns
    (e.g. ``{4: ["203.0.113.0/24{32,32}"]}``); by default exactly the fleet's VIPs and
    service cidrs are accepted. The router sessions with every director whose bgp_peers
    name it, using the fleet's hold time.
    """
    cfg = loaded.config
    router = _router(loaded, peer)
    nets = _accept(loaded, accept)
    families = [(v, nets[v]) for v in (4, 6) if v == 4 or nets[v]]
    hold = cfg.bgp.hold_time
    return _env(template_dir).get_template("bird.conf.j2").render(
        peer=router, router_id=router.address, log=log, accept=families, max_paths=max_paths,
        hold_time=hold, keepalive=cfg.bgp.effective_keepalive if hold else 0,
        connect_retry=connect_retry, error_wait_max=error_wait_max,
        local_asn=cfg.bgp.local_asn, directors=_directors(loaded, peer),
    )


def render_frr_conf(loaded: LoadedConfig, peer: str, *, accept: dict[int, list[str]] | None = None,
                    max_paths: int = 16, connect_retry: int = 5,
                    template_dir: Path = TEMPLATE_DIR) -> str:
    """FRR (bgpd/zebra, integrated config) for router ``peer``; ``accept`` takes FRR
    prefix-list entries (e.g. ``"203.0.113.0/24 ge 32"``), otherwise as render_bird_conf."""
    cfg = loaded.config
    hold = cfg.bgp.hold_time
    return _env(template_dir).get_template("frr.conf.j2").render(
        peer=_router(loaded, peer), accept=_accept(loaded, accept), max_paths=max_paths,
        hold_time=hold, keepalive=cfg.bgp.effective_keepalive if hold else 0,
        connect_retry=connect_retry, local_asn=cfg.bgp.local_asn, directors=_directors(loaded, peer),
    )
