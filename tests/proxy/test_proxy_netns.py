"""Real TCP through the real data planes: client -> router -> XDP director -> proxies A/B.

    cli (198.18.1.2) -- rtr -- dir (198.18.2.2, bpf/director.c on d0, XDP_TX back to rtr)
                         |
                        br0 198.18.0.0/24 -- A (198.18.0.21)   VIP 203.0.113.10 on lo,
                                          -- B (198.18.0.22)   bpf/proxy.c on eth0

The router sends VIP traffic to the director, which GUE-encapsulates it to the primary
proxy (listing the secondary as hop 0) and bounces it back to the router. Proxies answer
the client directly (DSR). A connection is established through A; then the director's
table makes B primary with A secondary: the connection's packets now reach B, which does
not know them and forwards them to A, and the transfer completes without a reset.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from glb_agent.dataplane.bpfcore import binding
from glb_agent.dataplane.proxy import ProxySettings
from glb_agent.proxy.host import ProxyHost
from tests.proxy.support import gue_payload, netns
from tests.support.netns import Lab, bpf_unavailable, sh

pytestmark = [pytest.mark.bpf, pytest.mark.netns]

VIP = "203.0.113.10"
CLIENT, DIRECTOR, ROUTER_LAN = "198.18.1.2", "198.18.2.2", "198.18.0.1"
A, B = "198.18.0.21", "198.18.0.22"
UDP_PORT = 9999

SERVER = r"""
import socket, sys, threading
name, vip = sys.argv[1], sys.argv[2]
def handle(c):
    with c:
        c.sendall(name.encode() + b"\n")
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((vip, 80))
s.listen(64)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"""

PASSER = b"int glb_test_pass(struct xdp_md *ctx) { return XDP_PASS; }"


@dataclass
class Fleet:
    lab: Lab
    ns: dict[str, str]
    director: object  # glb_agent.dataplane.director.XdpDirector
    spec: object  # TableSpec
    proxies: dict[str, ProxyHost]

    def rows(self, primary: int, secondary: int) -> np.ndarray:
        rows = np.empty((65536, 2), dtype=np.uint32)
        rows[:, 0], rows[:, 1] = primary, secondary
        return rows

    def route(self, primary: int, secondary: int) -> None:
        """Every flow: primary proxy index, secondary proxy index (0 = A, 1 = B)."""
        with netns(self.ns["dir"]):
            self.director.update_tables([(self.spec, self.rows(primary, secondary))])  # type: ignore[attr-defined]

    def counters(self, proxy: str) -> dict[str, int]:
        return self.proxies[proxy].dataplane.counters()


def _wait_line(proc: subprocess.Popen, want: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if want in line:
            return
        if proc.poll() is not None:
            break
    raise AssertionError(f"process did not print {want!r}")


def _wait_neighbour(ns: str, addr: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = sh("ip", "neigh", "show", addr, ns=ns).stdout
        if any(state in out for state in ("REACHABLE", "STALE", "DELAY", "PROBE")):
            return
        time.sleep(0.05)
    raise AssertionError(f"{ns}: managed neighbour {addr} never resolved: {out!r}")


@pytest.fixture(scope="module")
def fleet(pin_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    from bcc import BPF

    from glb_agent.dataplane.director import DirectorSettings, XdpDirector
    from glb_agent.table.spec import Backend, Bind, TableSpec

    state_dir = tmp_path_factory.mktemp("proxy-state")
    with Lab() as lab:
        ns = {name: lab.ns(name) for name in ("cli", "rtr", "dir", "pa", "pb")}
        lab.link(ns["cli"], "c0", ns["rtr"], "r_cli", [f"{CLIENT}/24"], ["198.18.1.1/24"])
        lab.link(ns["dir"], "d0", ns["rtr"], "r_dir", [f"{DIRECTOR}/24"], ["198.18.2.1/24"])
        lab.link(ns["pa"], "eth0", ns["rtr"], "r_pa", [f"{A}/24"])
        lab.link(ns["pb"], "eth0", ns["rtr"], "r_pb", [f"{B}/24"])
        rtr = ns["rtr"]
        sh("ip", "link", "add", "br0", "type", "bridge", ns=rtr)
        for dev in ("r_pa", "r_pb"):
            sh("ip", "link", "set", dev, "master", "br0", ns=rtr)
        sh("ip", "addr", "add", f"{ROUTER_LAN}/24", "dev", "br0", ns=rtr)
        # GUE adds 40 bytes to the client's 1500: the director's and the proxies' links are larger.
        for n, dev in ((rtr, "r_dir"), (rtr, "r_pa"), (rtr, "r_pb"), (rtr, "br0"),
                       (ns["dir"], "d0"), (ns["pa"], "eth0"), (ns["pb"], "eth0")):
            sh("ip", "link", "set", dev, "mtu", "1600", ns=n)
        sh("ip", "link", "set", "br0", "up", ns=rtr)
        # veth hands checksum work to a "NIC" that does not exist: a packet that crosses an
        # XDP program on the way keeps a partial TCP checksum, and the proxy's stack rejects
        # it. Real NICs finish checksums before the wire, so make the senders do it.
        for n, dev in ((ns["cli"], "c0"), (ns["pa"], "eth0"), (ns["pb"], "eth0"), (rtr, "r_cli")):
            sh("ethtool", "-K", dev, "tx", "off", ns=n)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=rtr)
        for key in ("all", "default", "r_dir", "br0", "r_cli"):
            sh("sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0", ns=rtr)
        sh("ip", "route", "add", f"{VIP}/32", "via", DIRECTOR, ns=rtr)
        sh("ip", "route", "add", "default", "via", "198.18.1.1", ns=ns["cli"])
        sh("ip", "route", "add", "default", "via", "198.18.2.1", ns=ns["dir"])
        for p in ("pa", "pb"):
            sh("ip", "route", "add", "default", "via", ROUTER_LAN, ns=ns[p])

        # XDP_TX from a veth is only received by a peer that runs XDP itself.
        passer = BPF(text=PASSER)
        pass_fd = passer.load_func(b"glb_test_pass", BPF.XDP).fd
        with netns(rtr):  # links held by these fds, gone with them or with the namespace
            passer_links = [binding.xdp_link_create(pass_fd, socket.if_nametoindex(dev), "native")
                            for dev in ("r_dir", "r_pa", "r_pb")]

        spec = TableSpec(
            "web", bytes(range(16)), bytes(16),
            (Bind(ipaddress.ip_network(f"{VIP}/32"), "tcp", 80, 80),
             Bind(ipaddress.ip_network(f"{VIP}/32"), "udp", UDP_PORT, UDP_PORT)),
            (Backend(ipaddress.ip_address(A)), Backend(ipaddress.ip_address(B))),
        )
        with netns(ns["dir"]):
            director = XdpDirector(DirectorSettings(
                interface="d0", source_ip=ipaddress.IPv4Address(DIRECTOR),
                gateway_mac=lab.mac(rtr, "r_dir"), pin_dir=pin_root / ns["dir"]))
            director.start()
        proxies = {}
        for name, me, other in (("pa", A, B), ("pb", B, A)):
            with netns(ns[name]):
                host = ProxyHost(ProxySettings(
                    interface="eth0", address=me, allowed_senders=(DIRECTOR,), peers=(other,),
                    vips=(VIP,), pin_dir=pin_root / ns[name]), state_dir=state_dir / name)
                host.apply()
                proxies[name] = host
            server = lab.start(sys.executable, "-c", SERVER, name, VIP, ns=ns[name],
                               stdout=subprocess.PIPE, text=True)
            _wait_line(server, "ready")
        fleet = Fleet(lab, ns, director, spec, proxies)
        fleet.route(0, 1)
        try:
            yield fleet
        finally:
            with netns(ns["dir"]):
                director.stop()
            for fd in passer_links:
                binding.close(fd)
            passer.cleanup()


def _connect(fleet: Fleet) -> tuple[socket.socket, str]:
    with netns(fleet.ns["cli"]):
        conn = socket.create_connection((VIP, 80), timeout=5)
    banner = b""
    while not banner.endswith(b"\n"):
        chunk = conn.recv(1)
        assert chunk, "server closed before its banner"
        banner += chunk
    return conn, banner.decode().strip()


def _echo(conn: socket.socket, data: bytes, chunk: int = 32768) -> bytes:
    """Send ``data`` in chunks and read each chunk's echo back (both directions stay busy)."""
    back = bytearray()
    for i in range(0, len(data), chunk):
        piece = data[i:i + chunk]
        conn.sendall(piece)
        want = len(back) + len(piece)
        while len(back) < want:
            got = conn.recv(65536)
            assert got, "connection closed during the transfer"
            back += got
    return bytes(back)


def test_connection_survives_a_primary_change(fleet: Fleet) -> None:
    fleet.route(0, 1)  # A primary, B secondary
    conn, server = _connect(fleet)
    assert server == "pa"
    try:
        first = os.urandom(200_000)
        assert _echo(conn, first) == first
        a0, b0 = fleet.counters("pa"), fleet.counters("pb")
        assert a0["accept_syn"] >= 1 and a0["accept_established"] > 0
        assert b0["rx_gue"] == 0  # nothing of this connection went to B so far

        _wait_neighbour(fleet.ns["pb"], A)  # the managed neighbour entry apply installed
        fleet.route(1, 0)  # B primary, A secondary: B does not know the connection
        second = os.urandom(600_000)
        back = _echo(conn, second)
        assert hashlib.sha256(back).digest() == hashlib.sha256(second).digest()
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(1) == b""  # clean FIN from A, not a reset
    finally:
        conn.close()
    a1, b1 = fleet.counters("pa"), fleet.counters("pb")
    assert b1["forwarded_tx"] - b0["forwarded_tx"] > 10  # B gave A its second chance...
    assert b1["accept_last_resort"] == b0["accept_last_resort"]  # ...and never took it itself
    assert a1["accept_established"] - a0["accept_established"] >= b1["forwarded_tx"] - b0["forwarded_tx"]

    # A new connection now starts on B, and B keeps it.
    conn, server = _connect(fleet)
    try:
        assert server == "pb"
        data = os.urandom(100_000)
        assert _echo(conn, data) == data
    finally:
        conn.close()
    fleet.route(0, 1)


def _udp_listener(fleet: Fleet) -> socket.socket:
    with netns(fleet.ns["pa"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((VIP, UDP_PORT))
    s.settimeout(1.0)
    return s


def _inner_udp(src: str, payload: bytes) -> bytes:
    from scapy.layers.inet import IP, UDP

    return bytes(IP(src=src, dst=VIP) / UDP(sport=5555, dport=UDP_PORT) / payload)


def test_spoofed_gue_is_dropped_and_the_real_path_delivers(fleet: Fleet) -> None:
    fleet.route(0, 1)
    listener = _udp_listener(fleet)
    try:
        before = fleet.counters("pa")
        # A host on the proxies' LAN that is not a director tries to inject a packet to the VIP.
        with netns(fleet.ns["rtr"]):
            rogue = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rogue.bind((ROUTER_LAN, 0))
            for _ in range(3):
                rogue.sendto(gue_payload(_inner_udp("192.0.2.66", b"spoofed")), (A, 19523))
            rogue.close()
        with pytest.raises(TimeoutError):
            listener.recv(100)
        after = fleet.counters("pa")
        assert after["drop_sender"] - before["drop_sender"] == 3
        assert after["accept_udp"] == before["accept_udp"]

        # The same datagram from the client, through the director, is delivered (control).
        with netns(fleet.ns["cli"]):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.sendto(b"genuine", (VIP, UDP_PORT))
        client.close()
        data, peer = listener.recvfrom(100)
        assert data == b"genuine" and peer[0] == CLIENT
        assert fleet.counters("pa")["accept_udp"] == after["accept_udp"] + 1
    finally:
        listener.close()


def test_director_health_probe_is_answered(fleet: Fleet) -> None:
    """The health checker's GUE echo, from the director, to the proxy and to the VIP."""
    from glb_agent.health.gue import GueProber

    async def probe_all() -> list[bool]:
        prober = GueProber()
        try:
            results = []
            for inner in (A, VIP):
                r = await prober.probe(ipaddress.IPv4Address(DIRECTOR), ipaddress.IPv4Address(A), 19523,
                                       timeout=2.0, inner_dst=ipaddress.IPv4Address(inner))
                results.append(r.ok)
            return results
        finally:
            prober.close()

    before = fleet.counters("pa")["accept_icmp"]
    with netns(fleet.ns["dir"]):
        assert asyncio.run(probe_all()) == [True, True]
    assert fleet.counters("pa")["accept_icmp"] - before == 2


def test_gue_header_layout_matches_what_the_director_sends(fleet: Fleet) -> None:
    """Capture one encapsulated SYN on its way to A: hop list [B], next_hop 0.

    Captured on the router's side of A's link: on A itself XDP runs before any packet tap.
    """
    fleet.route(0, 1)
    with netns(fleet.ns["rtr"]):
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        cap.bind(("r_pa", 0))
    cap.settimeout(0.2)
    try:
        conn, server = _connect(fleet)
        conn.close()
        assert server == "pa"
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                frame = cap.recv(2048)
            except TimeoutError:
                continue
            ip = frame[14:]
            if frame[12:14] != b"\x08\x00" or ip[9] != 17 or struct.unpack("!H", ip[22:24])[0] != 19523:
                continue
            gue = ip[28:]
            assert ip[12:16] == ipaddress.IPv4Address(DIRECTOR).packed
            assert gue[0] == 2 and gue[1] == 4  # version 0, hlen 2 words; inner IPv4
            assert gue[4:8] == bytes([0, 0, 0, 1]) and gue[8:12] == ipaddress.IPv4Address(B).packed
            return
        raise AssertionError("no GUE packet captured on A's link")
    finally:
        cap.close()
