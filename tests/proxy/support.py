"""Helpers for the proxy tests: entering namespaces, GUE packets, test runs with an ingress device.

Socket lookups from XDP happen in the network namespace of the receiving device; under
BPF_PROG_TEST_RUN that is the caller's namespace. The tests therefore switch the calling
thread into a throw-away namespace (setns) where they own the VIPs and the sockets.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, ip_address
from pathlib import Path

from glb_agent.dataplane.bpfcore import testrun
from glb_agent.lab.netns import inside

netns = inside  # the shared implementation in glb_agent.lab.netns


@contextlib.contextmanager
def sysctl(name: str, value: int | str) -> Iterator[None]:
    """Set /proc/sys/<name> in the calling thread's namespace for the block, then restore it."""
    path = Path("/proc/sys") / name
    old = path.read_text().strip()
    path.write_text(str(value))
    try:
        yield
    finally:
        path.write_text(old)


def gue_payload(inner: bytes, hops: Sequence[str] = (), next_hop: int = 0, *, proto: int | None = None,
                version: int = 0, cbit: int = 0, hlen: int | None = None, flags: int = 0,
                private_type: int = 0, hop_count: int | None = None) -> bytes:
    """GUE base + GLB private data + hops + inner packet; every field can be made wrong."""
    if proto is None:
        proto = 4 if inner[0] >> 4 == 4 else 41
    count = len(hops) if hop_count is None else hop_count
    if hlen is None:
        hlen = 1 + len(hops)
    base = struct.pack("!BBH", (version << 6) | (cbit << 5) | (hlen & 0x1F), proto, flags)
    priv = struct.pack("!HBB", private_type, next_hop, count)
    return base + priv + b"".join(IPv4Address(h).packed for h in hops) + inner


def gue_frame(inner: bytes, *, src: str, dst: str, hops: Sequence[str] = (), next_hop: int = 0,
              dst_mac: str = "02:00:00:00:00:21", src_mac: str = "02:00:00:00:00:01",
              sport: int = 40000, dport: int = 19523, udp_checksum: bool = False,
              ip_flags: str = "DF", frag: int = 0, **gue_kw: object) -> bytes:
    """A complete Ethernet frame as a director sends it (UDP checksum 0 unless asked)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    payload = gue_payload(inner, hops, next_hop, **gue_kw)  # type: ignore[arg-type]
    udp = UDP(sport=sport, dport=dport) if udp_checksum else UDP(sport=sport, dport=dport, chksum=0)
    pkt = Ether(dst=dst_mac, src=src_mac) / IP(src=src, dst=dst, ttl=17, flags=ip_flags, frag=frag) / udp
    return bytes(pkt / payload)


def tcp_packet(src: str, dst: str, sport: int, dport: int, flags: str = "A", seq: int = 1000,
               ack: int = 2000, payload: bytes = b"") -> bytes:
    """An inner TCP packet (IPv4 or IPv6 by address family) with valid checksums."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    ip = IP(src=src, dst=dst) if ip_address(src).version == 4 else IPv6(src=src, dst=dst)
    return bytes(ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / payload)


def run_on(prog_fd: int, packet: bytes, ingress_ifindex: int = 0) -> testrun.RunResult:
    """Like testrun.run, but as if received on ``ingress_ifindex`` (0: loopback).

    The ingress device matters for the forward path: a next hop reached through the
    receiving interface is XDP_TX, anything else a redirect.
    """
    return testrun.run(prog_fd, packet, ingress_ifindex=ingress_ifindex)


def ipv4_checksum_ok(header: bytes) -> bool:
    """RFC 1071: a header with a correct checksum sums to 0xffff."""
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF
