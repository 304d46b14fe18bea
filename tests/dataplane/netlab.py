"""A client, a director and a proxy on one bridged segment, for real-traffic director tests.

    client (198.18.1.2) --+
    director (198.18.1.1) +-- bridge in namespace "sw"
    proxy (198.18.1.3, .4)+

The client routes the VIPs via the director; the director's XDP program sends GUE to the
proxy's MAC (its gateway); a UDP socket on 19523 in the proxy namespace receives the GUE
payload, and IP_PKTINFO tells which backend address (primary) it was sent to. Only
addresses from PLATFORM.md's test ranges, only inside namespaces this lab creates.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from glb_agent.lab.netns import inside
from tests.support.netns import Lab, sh

IP_PKTINFO = 8  # <linux/in.h>; Python 3.11 does not export it

DIRECTOR_IP, CLIENT_IP, PROXY_IPS = "198.18.1.1", "198.18.1.2", ("198.18.1.3", "198.18.1.4")
DIRECTOR_IP6, CLIENT_IP6 = "2001:db8:1::1", "2001:db8:1::2"
VIP, VIP6 = "203.0.113.53", "2001:db8:100::53"
DIRECTOR_MAC, CLIENT_MAC, PROXY_MAC = "02:47:4c:01:00:01", "02:47:4c:01:00:02", "02:47:4c:01:00:03"


netns = inside  # the shared implementation in glb_agent.lab.netns


@dataclass
class Received:
    primary: str
    payload: bytes  # GUE header + inner packet


@dataclass
class GueSink:
    """Collects every GUE datagram that reaches the proxy namespace."""

    ns: str
    packets: list[Received] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: bool = False

    def start(self) -> GueSink:
        with netns(self.ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        s.bind(("0.0.0.0", 19523))
        s.settimeout(0.2)
        self._sock = s
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        assert self._sock is not None
        while not self._stop:
            try:
                data, anc, _flags, _addr = self._sock.recvmsg(65535, socket.CMSG_SPACE(12))
            except TimeoutError:
                continue
            except OSError:
                return
            primary = "?"
            for level, kind, blob in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    primary = socket.inet_ntoa(blob[8:12])  # ipi_addr: the header's destination
            self.packets.append(Received(primary, data))

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.packets) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # let stragglers (duplicates would be a bug) arrive
        return list(self.packets)

    def close(self) -> None:
        self._stop = True
        if self._thread:
            self._thread.join(2)
        if self._sock:
            self._sock.close()


@dataclass
class DirectorLab:
    lab: Lab
    client: str
    director: str
    proxy: str
    switch: str
    passer: object  # bcc.BPF of the peer's XDP_PASS program; dies with the namespace

    def client_socket(self, port: int, family: int = socket.AF_INET) -> socket.socket:
        with netns(self.client):
            s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0" if family == socket.AF_INET else "::", port))
        return s


def build(lab: Lab) -> DirectorLab:
    sw = lab.ns("sw")
    cl, dr, px = lab.ns("cl"), lab.ns("dr"), lab.ns("px")
    sh("ip", "link", "add", "br0", "type", "bridge", ns=sw)
    sh("ip", "link", "set", "br0", "up", ns=sw)
    lab.link(cl, "eth0", sw, "c0", a_addrs=[f"{CLIENT_IP}/24", f"{CLIENT_IP6}/64"], a_mac=CLIENT_MAC)
    lab.link(dr, "eth0", sw, "d0", a_addrs=[f"{DIRECTOR_IP}/24", f"{DIRECTOR_IP6}/64"], a_mac=DIRECTOR_MAC)
    lab.link(px, "eth0", sw, "p0", a_addrs=[f"{ip}/24" for ip in PROXY_IPS], a_mac=PROXY_MAC)
    for port in ("c0", "d0", "p0"):
        sh("ip", "link", "set", port, "master", "br0", ns=sw)
    # XDP_TX on a veth reaches the peer only if the peer runs NAPI: give it an XDP_PASS
    # program (GRO alone did not deliver the frames on this kernel).
    from bcc import BPF

    with netns(sw):
        passer = BPF(text="int glb_test_passer(struct xdp_md *ctx) { return XDP_PASS; }")
        passer.attach_xdp("d0", passer.load_func(b"glb_test_passer", BPF.XDP), BPF.XDP_FLAGS_DRV_MODE)
    sh("ip", "route", "add", f"{VIP}/32", "via", DIRECTOR_IP, ns=cl)
    sh("ip", "-6", "route", "add", f"{VIP6}/128", "via", DIRECTOR_IP6, ns=cl)
    # Static neighbours: no ARP/ND race at the first packet.
    sh("ip", "neigh", "replace", DIRECTOR_IP, "lladdr", DIRECTOR_MAC, "dev", "eth0", "nud", "permanent", ns=cl)
    sh("ip", "-6", "neigh", "replace", DIRECTOR_IP6, "lladdr", DIRECTOR_MAC, "dev", "eth0", "nud", "permanent", ns=cl)
    return DirectorLab(lab, cl, dr, px, sw, passer)


def parse_gue(payload: bytes) -> tuple[int, str, bytes]:
    """(gue proto, secondary hop, inner packet) of a GUE payload from the director."""
    hlen = payload[0] & 0x1F
    assert payload[0] >> 6 == 0 and hlen == 2, payload[:12].hex()
    assert payload[4:8] == bytes([0, 0, 0, 1])
    return payload[1], socket.inet_ntoa(payload[8:12]), payload[4 + 4 * hlen:]


def inner_udp(inner: bytes) -> tuple[str, int, int, bytes]:
    """(source address, source port, destination port, payload) of an inner IPv4/UDP packet."""
    ihl = (inner[0] & 0x0F) * 4
    sport, dport, _len, _csum = struct.unpack_from(">HHHH", inner, ihl)
    return socket.inet_ntoa(inner[12:16]), sport, dport, inner[ihl + 8:]
