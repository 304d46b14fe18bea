"""The lab's network, derived from the lab YAML so the lab exercises the real config.

    client ns ── eth0 ─── router ns (BIRD, ECMP) ── fab ──┐
                                                          │ fabric ns: bridge br0
               director ns d1..dN ── eth0 ────────────────┤ (one L2 segment, GRO on every
               proxy ns    p1..pN ── eth0 ────────────────┘  port so veth XDP_TX works)

The router's fabric MAC is the directors' ``gateway_mac`` from the YAML: directors bounce
GUE packets back to the router, which routes them to the proxy (as a ToR would). Proxies
answer clients directly through the router (DSR).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from glb_agent.config.load import LoadedConfig

PREFIX = "glb-lab-"
FABRIC_NS = f"{PREFIX}fabric"
CLIENT_NS = f"{PREFIX}client"
CLIENT_NET = ipaddress.ip_network("198.19.0.0/24")
CLIENT_NET6 = ipaddress.ip_network("2001:db8:19::/64")
FABRIC_NET6 = ipaddress.ip_network("2001:db8:18::/64")
CLIENT_SOURCES = 64  # extra client addresses, so the source-address hash spreads the demo


def ns_name(node: str) -> str:
    return f"{PREFIX}{node}"


@dataclass(frozen=True)
class Node:
    name: str
    address: ipaddress.IPv4Address
    interface: str = "eth0"
    mac: str | None = None

    @property
    def ns(self) -> str:
        return ns_name(self.name)


@dataclass(frozen=True)
class Plan:
    """Every namespace, address and MAC of the lab."""

    fabric_prefix: int
    router: Node
    router_asn: int
    directors: tuple[Node, ...]
    proxies: tuple[Node, ...]
    vips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]
    client_addresses: tuple[ipaddress.IPv4Address, ...] = field(default_factory=tuple)

    @property
    def router_client_address(self) -> ipaddress.IPv4Address:
        return CLIENT_NET.network_address + 1

    @property
    def client_address(self) -> ipaddress.IPv4Address:
        return CLIENT_NET.network_address + 10


def plan(loaded: LoadedConfig) -> Plan:
    cfg = loaded.config
    peer = cfg.bgp.peers[0]
    macs = {d.gateway_mac for d in cfg.directors if d.gateway_mac}
    if len(macs) != 1 or not isinstance(peer.address, ipaddress.IPv4Address):
        from glb_agent.errors import InputError

        raise InputError("the lab needs one IPv4 BGP peer (the router) and one gateway_mac for all directors")
    router = Node(peer.name, peer.address, "fab", macs.pop())
    client = CLIENT_NET.network_address + 10
    return Plan(
        fabric_prefix=24,
        router=router,
        router_asn=peer.asn,
        directors=tuple(Node(d.name, d.address, d.interface) for d in cfg.directors),
        proxies=tuple(Node(p.name, p.address, p.interface) for p in cfg.proxies),
        vips=tuple(v for s in cfg.services for v in s.vips),
        client_addresses=tuple(client + 1 + i for i in range(CLIENT_SOURCES)),
    )
