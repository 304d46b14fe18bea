"""The lab's network, derived from the lab YAML so the lab exercises the real config.

    client ns ── eth0 ─── router ns (BIRD, ECMP) ── fab ──┐
                                                          │ fabric ns: bridge br0
               director ns d1..dN ── eth0 ────────────────┤ (one L2 segment, GRO on every
               proxy ns    p1..pN ── eth0 ────────────────┘  port so veth XDP_TX works)

The router's fabric MAC is the directors' ``gateway_mac`` from the YAML: directors bounce
GUE packets back to the router, which routes them to the proxy (as a ToR would). Proxies
answer clients directly through the router (DSR).

Dual stack: IPv4 in 198.18.0.0/15 (fabric 198.18.0.0/24, clients 198.19.0.0/24), IPv6 in
2001:db8::/32 (fabric 2001:db8:18::/64, clients 2001:db8:19::/64). IPv6 VIPs reach the
directors over the router's IPv6 BGP sessions; GUE to the proxies stays IPv4.
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


def fabric_address6(address: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    """A lab host's IPv6 fabric address when glb.yml has none: the IPv4 host number written
    into FABRIC_NET6 (198.18.0.21 -> 2001:db8:18::21), so both addresses read alike."""
    return FABRIC_NET6.network_address + int(str(address).rsplit(".", 1)[1], 16)


@dataclass(frozen=True)
class Node:
    name: str
    address: ipaddress.IPv4Address
    interface: str = "eth0"
    mac: str | None = None
    address6: ipaddress.IPv6Address | None = None

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
    # The router's entries in bgp.peers: its IPv4 one and, for IPv6 VIPs, its IPv6 one.
    router_peers: tuple[str, ...] = ()
    client_addresses6: tuple[ipaddress.IPv6Address, ...] = field(default_factory=tuple)

    @property
    def router_client_address(self) -> ipaddress.IPv4Address:
        return CLIENT_NET.network_address + 1

    @property
    def client_address(self) -> ipaddress.IPv4Address:
        return CLIENT_NET.network_address + 10

    @property
    def router_client_address6(self) -> ipaddress.IPv6Address:
        return CLIENT_NET6.network_address + 1

    @property
    def client_address6(self) -> ipaddress.IPv6Address:
        return CLIENT_NET6.network_address + 0x10


def plan(loaded: LoadedConfig) -> Plan:
    """The lab for glb.yml: the router is its first IPv4 peer plus the first IPv6 peer with the
    same ASN (if any); every host gets an IPv6 fabric address next to its IPv4 one."""
    from glb_agent.errors import InputError

    cfg = loaded.config
    peer = cfg.bgp.peers[0]
    macs = {d.gateway_mac for d in cfg.directors if d.gateway_mac}
    if len(macs) != 1 or not isinstance(peer.address, ipaddress.IPv4Address):
        raise InputError("the lab needs one IPv4 BGP peer (the router) and one gateway_mac for all directors")
    peer6 = next((p for p in cfg.bgp.peers if p.address.version == 6 and p.asn == peer.asn), None)
    address6 = peer6.address if peer6 is not None else fabric_address6(peer.address)
    if address6 not in FABRIC_NET6:
        raise InputError(f"the lab router's IPv6 address {address6} must be in {FABRIC_NET6}")
    router = Node(peer.name, peer.address, "fab", macs.pop(), address6)
    directors = tuple(Node(d.name, d.address, d.interface, address6=d.address6 or fabric_address6(d.address))
                      for d in cfg.directors)
    for d in directors:
        if d.address6 not in FABRIC_NET6:
            raise InputError(f"director {d.name}: the lab puts address6 on the fabric, {FABRIC_NET6}")
    client = CLIENT_NET.network_address + 10
    client6 = CLIENT_NET6.network_address + 0x10
    return Plan(
        fabric_prefix=24,
        router=router,
        router_asn=peer.asn,
        directors=directors,
        proxies=tuple(Node(p.name, p.address, p.interface, address6=fabric_address6(p.address))
                      for p in cfg.proxies),
        vips=tuple(v for s in cfg.services for v in s.vips),
        client_addresses=tuple(client + 1 + i for i in range(CLIENT_SOURCES)),
        router_peers=(peer.name,) + ((peer6.name,) if peer6 is not None else ()),
        client_addresses6=tuple(client6 + 1 + i for i in range(CLIENT_SOURCES)),
    )
