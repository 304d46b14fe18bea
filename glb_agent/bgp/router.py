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

from glb_agent.bgp.prefixes import announced_prefixes
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
    router = _peer(loaded, peer)
    if router.address.version != 4:
        raise InputError(f"peer {peer}: the lab router template needs an IPv4 peer address")
    if accept is None:
        prefixes = announced_prefixes(cfg)
        accept = {v: [str(p) for p in prefixes if p.version == v] for v in (4, 6)}
    families = [(v, accept.get(v, [])) for v in (4, 6) if v == 4 or accept.get(v)]
    directors = [
        RouterDirector(d.name, "d_" + re.sub(r"[^A-Za-z0-9_]", "_", d.name), str(d.address))
        for d in cfg.directors
        if any(p.name == peer for p in director_peers(loaded, d))
    ]
    hold = cfg.bgp.hold_time
    return _env(template_dir).get_template("bird.conf.j2").render(
        peer=router, router_id=router.address, log=log, accept=families, max_paths=max_paths,
        hold_time=hold, keepalive=cfg.bgp.effective_keepalive if hold else 0,
        connect_retry=connect_retry, error_wait_max=error_wait_max,
        local_asn=cfg.bgp.local_asn, directors=directors,
    )
