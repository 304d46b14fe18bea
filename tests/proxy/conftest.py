"""Fixtures for the proxy data-plane tests: a namespace that looks like one proxy host."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from glb_agent.dataplane.proxy import ProxyDataplane, ProxySettings
from tests.proxy.support import netns
from tests.support.netns import Lab, bpf_unavailable, sh
from tests.support.pinlayout import pin_layout  # noqa: F401  (a fixture for the tests here)

PROXY = "198.18.0.21"
PEER = "198.18.0.22"  # another proxy, with a permanent neighbour entry
UNRESOLVED = "198.18.0.99"  # on-link, never answers ARP
DIRECTOR = "198.18.0.1"
VIP4, VIP6 = "203.0.113.10", "2001:db8:100::10"
CLIENT4, CLIENT6 = "198.51.100.7", "2001:db8:200::7"  # local, to own real client sockets
PEER_MAC = "02:00:00:00:00:22"
ROUTER6, ROUTER6_MAC = "2001:db8:1::1", "02:00:00:00:00:01"


@pytest.fixture(scope="session")
def pin_root() -> Iterator[Path]:
    root = Path("/sys/fs/bpf") / f"glbt-proxy-{secrets.token_hex(3)}"
    yield root
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class ProxyHost:
    """One namespace set up like a proxy: VIPs on lo, px0 towards the LAN, program attached."""

    lab: Lab
    ns: str
    dp: ProxyDataplane
    prog_fd: int
    ifindex: int
    mac: str

    def counters(self) -> dict[str, int]:
        return self.dp.counters()


def make_proxy_ns(lab: Lab) -> str:
    ns = lab.ns("pxpkt")
    sh("ip", "link", "add", "px0", "type", "veth", "peer", "name", "px1", ns=ns)
    sh("ip", "link", "set", "px0", "address", "02:00:00:00:00:21", ns=ns)
    for dev in ("px0", "px1"):
        sh("ip", "link", "set", dev, "up", ns=ns)
    sh("ip", "addr", "add", f"{PROXY}/24", "dev", "px0", ns=ns)
    sh("ip", "addr", "add", "2001:db8:1::21/64", "dev", "px0", "nodad", ns=ns)
    for addr in (f"{VIP4}/32", f"{CLIENT4}/32"):
        sh("ip", "addr", "add", addr, "dev", "lo", ns=ns)
    for addr in (f"{VIP6}/128", f"{CLIENT6}/128"):
        sh("ip", "addr", "add", addr, "dev", "lo", ns=ns)
    sh("ip", "neigh", "add", PEER, "lladdr", PEER_MAC, "nud", "permanent", "dev", "px0", ns=ns)
    sh("ip", "neigh", "add", ROUTER6, "lladdr", ROUTER6_MAC, "nud", "permanent", "dev", "px0", ns=ns)
    # Replies to the synthetic clients of the handshake tests leave through px0 and vanish.
    sh("ip", "route", "add", "default", "via", PEER, "dev", "px0", ns=ns)
    sh("ip", "-6", "route", "add", "default", "via", ROUTER6, "dev", "px0", ns=ns)
    # What the host setup does so the program can look routes up (see bpf/proxy.c).
    sh("sysctl", "-qw", "net.ipv4.conf.lo.forwarding=1", ns=ns)
    # px1 only swallows what px0 sends; it must not answer for px0's addresses.
    sh("sysctl", "-qw", "net.ipv6.conf.px1.disable_ipv6=1", ns=ns)
    return ns


@pytest.fixture(scope="module")
def proxy_host(pin_root: Path) -> Iterator[ProxyHost]:
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    with Lab() as lab:
        ns = make_proxy_ns(lab)
        settings = ProxySettings(
            interface="px0", address=PROXY, allowed_senders=(DIRECTOR,), peers=(PEER,),
            vips=(VIP4, VIP6), pin_dir=pin_root / f"{ns}-px0",
        )
        with netns(ns):
            dp = ProxyDataplane(settings)
            dp.start()
            prog_fd = dp.prog_fd()
            ifindex = int(sh("cat", "/sys/class/net/px0/ifindex", ns=ns).stdout)
            try:
                yield ProxyHost(lab, ns, dp, prog_fd, ifindex, "02:00:00:00:00:21")
            finally:
                os.close(prog_fd)
                with contextlib.suppress(Exception):
                    dp.stop()
