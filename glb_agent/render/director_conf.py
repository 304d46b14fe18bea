"""``director.conf`` in upstream glb-director's JSON format.

Upstream's DPDK director needs the lcore/flow-path layout too; we emit a minimal valid one
so an upstream director can run from our output, while our XDP director reads only the
gateway MAC, source IP and hash fields.
"""

from __future__ import annotations

import json

from glb_agent.config.hosts import this_director
from glb_agent.config.load import LoadedConfig
from glb_agent.errors import InputError
from glb_agent.render.templates import render

ALL_HASH_FIELDS = ("src_addr", "dst_addr", "src_port", "dst_port")


def render_director_conf(loaded: LoadedConfig, director: str) -> str:
    cfg = loaded.config
    d = this_director(loaded, director, strict=True)
    if d.gateway_mac is None:
        raise InputError(
            f"director {director} sets next_hop {d.next_hop}, whose MAC is only known on that "
            "host at start; upstream director.conf needs gateway_mac"
        )
    text = render(
        "director.conf.j2",
        gateway_mac=d.gateway_mac,
        source_ip=str(d.outer_source),
        hash_fields=list(cfg.fleet.hash_fields),
        alt_hash_fields=list(cfg.fleet.alt_hash_fields) if cfg.fleet.alt_hash_fields else None,
        all_hash_fields=ALL_HASH_FIELDS,
    )
    json.loads(text)  # the template must always produce valid JSON
    return text
