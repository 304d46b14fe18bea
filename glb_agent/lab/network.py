"""Build and tear down the lab's namespaces and links (see topology.py for the picture)."""

from __future__ import annotations

import os
from pathlib import Path

from glb_agent.lab import netns
from glb_agent.lab.topology import (
    CLIENT_NET,
    CLIENT_NET6,
    CLIENT_NS,
    FABRIC_NET6,
    FABRIC_NS,
    PREFIX,
    Node,
    Plan,
)

BRIDGE = "br0"
PASSER_SRC = Path(__file__).resolve().parent.parent / "bpf" / "lab" / "passer.c"


def passer_object() -> Path:
    """bpf/lab/passer.c compiled once per lab run (clang is a data-plane dependency anyway)."""
    out = Path(os.environ.get("GLB_LAB_DIR", "/run/glb-lab")) / "passer.o"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        netns.run("clang", "-O2", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", str(PASSER_SRC),
                  "-o", str(out))
    return out


def _port_name(node: Node) -> str:
    return f"p-{node.name}"[:15]


def _attach_to_fabric(node: Node, plan: Plan, *extra_addrs: str) -> None:
    netns.add(node.ns)
    port = _port_name(node)
    addrs = [f"{node.address}/{plan.fabric_prefix}", *extra_addrs]
    if node.address6 is not None:
        addrs.append(f"{node.address6}/{FABRIC_NET6.prefixlen}")
    netns.veth(node.ns, node.interface, FABRIC_NS, port, a_addrs=addrs, a_mac=node.mac)
    netns.run("ip", "link", "set", port, "master", BRIDGE, ns=FABRIC_NS)
    # Frames a node sends with XDP_TX are only received reliably by a peer running XDP.
    netns.run("ip", "link", "set", "dev", port, "xdpdrv", "obj", str(passer_object()), "sec", "xdp",
              ns=FABRIC_NS)
    _full_checksums(node.ns, node.interface)
    _full_checksums(FABRIC_NS, port)


def _full_checksums(ns: str, dev: str) -> None:
    """veth hands on packets with the L4 checksum left for "hardware" to finish; once XDP
    has encapsulated such a packet nobody finishes it. Real NICs do; in the lab, senders
    compute full checksums."""
    netns.run("ethtool", "-K", dev, "tx", "off", ns=ns, check=False)


def build(plan: Plan) -> None:
    """Create every namespace and link; the caller removes a half-built lab with destroy()."""
    netns.add(FABRIC_NS)
    netns.run("ip", "link", "add", BRIDGE, "type", "bridge", ns=FABRIC_NS)
    netns.run("ip", "link", "set", BRIDGE, "up", ns=FABRIC_NS)

    router = plan.router
    _attach_to_fabric(router, plan)
    netns.sysctl(router.ns, {
        "net.ipv4.ip_forward": 1,
        "net.ipv6.conf.all.forwarding": 1,
        # hash ECMP on the 5-tuple, as datacenter routers do, so flows spread over directors
        "net.ipv4.fib_multipath_hash_policy": 1,
        "net.ipv6.fib_multipath_hash_policy": 1,
        # directors hand GUE back to the router on the same segment: no redirects for that
        "net.ipv4.conf.all.send_redirects": 0,
        "net.ipv4.conf.fab.send_redirects": 0,
    })

    netns.add(CLIENT_NS)
    client_addrs = [f"{plan.client_address}/{CLIENT_NET.prefixlen}"]
    client_addrs += [f"{a}/{CLIENT_NET.prefixlen}" for a in plan.client_addresses]
    client_addrs += [f"{a}/{CLIENT_NET6.prefixlen}" for a in (plan.client_address6, *plan.client_addresses6)]
    netns.veth(CLIENT_NS, "eth0", router.ns, "cli", a_addrs=client_addrs,
               b_addrs=[f"{plan.router_client_address}/{CLIENT_NET.prefixlen}",
                        f"{plan.router_client_address6}/{CLIENT_NET6.prefixlen}"])
    netns.run("ip", "route", "add", "default", "via", str(plan.router_client_address), ns=CLIENT_NS)
    netns.run("ip", "-6", "route", "add", "default", "via", str(plan.router_client_address6), ns=CLIENT_NS)
    _full_checksums(CLIENT_NS, "eth0")
    _full_checksums(router.ns, "cli")

    for node in plan.directors:
        _attach_to_fabric(node, plan)
        _default_routes(node, router)
    for node in plan.proxies:
        _attach_to_fabric(node, plan)
        # replies to clients leave directly (DSR) through the router, IPv6 ones too
        _default_routes(node, router)


def _default_routes(node: Node, router: Node) -> None:
    netns.run("ip", "route", "add", "default", "via", str(router.address), ns=node.ns)
    if node.address6 is not None and router.address6 is not None:
        netns.run("ip", "-6", "route", "add", "default", "via", str(router.address6), ns=node.ns)


def destroy() -> list[str]:
    """Remove every lab namespace (and the processes in them), built fully or not."""
    removed = netns.names(PREFIX)
    for name in removed:
        netns.delete(name)
    return removed
