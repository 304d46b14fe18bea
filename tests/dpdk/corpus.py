"""Frames for the DPDK-vs-XDP differential tests: every case the director's packet tests name
(both families, VLAN, binds by prefix and port range, ICMP errors and echo, fragments,
malformed headers, not-a-VIP traffic), then seeded mutations of them (truncations, bit flips,
length fields) so the two builds also meet packets nobody wrote by hand.

The tables are tests/dataplane/conftest.py's (web, dns, range), so the VIPs and ports match.
"""

from __future__ import annotations

import random

from scapy.layers.inet import (
    ICMP,
    IP,
    TCP,
    UDP,
    IPerror,
    IPOption_NOP,
    IPOption_RR,
    TCPerror,
    UDPerror,
    fragment,
)
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6PacketTooBig,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

DIR_MAC = "02:47:4c:00:00:11"
CLIENT_MAC = "02:00:00:00:aa:01"
VIP, VIP6 = "203.0.113.10", "2001:db8:100::10"
DNS4, DNS6 = "203.0.113.53", "2001:db8:100::53"
RANGE4, RANGE6 = "203.0.113.5", "2001:db8:300::99"
MAX_FRAME = 1800  # at MTU 1500 net_pcap hands longer frames over chained; the core reads one segment


def _eth() -> Ether:
    return Ether(src=CLIENT_MAC, dst=DIR_MAC)


def base_frames() -> list[bytes]:
    """Hand-written cases, one or more per policy of bpf/director.c."""
    rng = random.Random(16)
    f: list = []
    for i in range(24):
        client = f"198.51.100.{i + 1}"
        f.append(_eth() / IP(src=client, dst=VIP, id=rng.randrange(65536)) / TCP(sport=1024 + 97 * i, dport=80))
        f.append(_eth() / IP(src=client, dst=VIP) / TCP(sport=2000 + i, dport=443, flags="PA") / Raw(b"x" * i * 7))
        f.append(_eth() / IPv6(src=f"2001:db8:aaaa::{i + 1:x}", dst=VIP6, fl=rng.randrange(1 << 20))
                 / TCP(sport=3000 + i, dport=80))
    f += [
        _eth() / IP(src="198.51.100.9", dst=DNS4) / UDP(sport=5353, dport=53) / Raw(b"q" * 30),
        _eth() / IPv6(src="2001:db8:aaaa::9", dst=DNS6) / UDP(sport=999, dport=53) / Raw(b"z" * 10),
        # prefix bind with a port range (most specific wins for the /32 VIP)
        _eth() / IP(src="198.51.100.3", dst=RANGE4) / TCP(sport=40000, dport=8050),
        _eth() / IP(src="198.51.100.3", dst=VIP) / TCP(sport=40000, dport=8000),
        _eth() / IP(src="198.51.100.3", dst=RANGE4) / TCP(sport=40000, dport=8101),  # outside the range
        _eth() / IPv6(src="2001:db8:aaaa::3", dst=RANGE6) / UDP(sport=7, dport=5999),
        # VLAN
        _eth() / Dot1Q(vlan=42, prio=3) / IP(src="198.51.100.4", dst=VIP) / TCP(sport=5555, dport=80),
        _eth() / Dot1Q(vlan=7) / IPv6(src="2001:db8:aaaa::4", dst=VIP6) / TCP(sport=5556, dport=80),
        _eth() / Dot1Q(vlan=7) / Dot1Q(vlan=8) / IP(src="198.51.100.4", dst=VIP) / TCP(sport=5555, dport=80),
        # IPv4 options
        _eth() / IP(src="198.51.100.5", dst=VIP, options=[IPOption_NOP(), IPOption_RR()]) / TCP(sport=1, dport=80),
        # ICMP: errors quoting a VIP's packet, echo, other
        _eth() / IP(src="192.0.2.1", dst=VIP) / ICMP(type=3, code=4, nexthopmtu=1400)
        / IPerror(src=VIP, dst="198.51.100.7") / TCPerror(sport=80, dport=40001),
        _eth() / IP(src="192.0.2.1", dst=VIP) / ICMP(type=11) / IPerror(src=VIP, dst="198.51.100.8") / TCPerror(
            sport=443, dport=40002),
        _eth() / IP(src="192.0.2.1", dst=DNS4) / ICMP(type=3, code=3) / IPerror(src=DNS4, dst="198.51.100.8")
        / UDPerror(sport=53, dport=5353),
        _eth() / IP(src="192.0.2.1", dst=VIP) / ICMP(type=3, code=4) / IPerror(src="203.0.113.77", dst="198.51.100.7")
        / TCPerror(sport=80, dport=40001),  # quotes another address: malformed
        _eth() / IP(src="198.51.100.6", dst=VIP, id=77) / ICMP(type=8, id=5, seq=1) / Raw(b"ping"),
        _eth() / IP(src="198.51.100.6", dst=VIP) / ICMP(type=0),
        _eth() / IPv6(src="2001:db8:aaaa::6", dst=VIP6) / ICMPv6EchoRequest(id=1, seq=2),
        _eth() / IPv6(src="2001:db8:aaaa::6", dst=VIP6) / ICMPv6EchoReply(),
        _eth() / IPv6(src="2001:db8:aaaa::6", dst=VIP6) / ICMPv6ND_NS(tgt=VIP6),
        _eth() / IPv6(src="2001:db8::1", dst=VIP6) / ICMPv6PacketTooBig(mtu=1280)
        / IPerror6(src=VIP6, dst="2001:db8:aaaa::7") / TCP(sport=80, dport=40003),
        # extension headers, fragments
        _eth() / IPv6(src="2001:db8:aaaa::8", dst=VIP6) / IPv6ExtHdrDestOpt() / TCP(sport=8, dport=80),
        _eth() / IPv6(src="2001:db8:aaaa::8", dst=DNS6) / IPv6ExtHdrFragment(offset=0, m=1, id=9) / UDP(sport=8, dport=53),
        _eth() / IPv6(src="2001:db8:aaaa::8", dst=DNS6) / IPv6ExtHdrFragment(offset=100, m=0, id=9, nh=17) / Raw(b"y" * 16),
        # too big for the MTU once encapsulated
        _eth() / IP(src="198.51.100.10", dst=VIP) / TCP(sport=9, dport=80) / Raw(b"b" * 1440),
        _eth() / IP(src="198.51.100.10", dst=VIP) / TCP(sport=9, dport=80) / Raw(b"b" * 1420),
        # not for a VIP
        _eth() / IP(src="198.51.100.11", dst="192.0.2.99") / TCP(sport=1, dport=80),
        _eth() / IP(src="198.51.100.11", dst=VIP) / TCP(sport=1, dport=22),
        _eth() / ARP(pdst=VIP),
        _eth() / IPv6(src="2001:db8:aaaa::11", dst="2001:db8:ffff::1") / UDP(),
    ]
    frames = [bytes(p) for p in f]
    # fragments of a TCP and a UDP datagram (dropped or forwarded per the fragment policy)
    for p in fragment(IP(src="198.51.100.12", dst=VIP, id=4242) / TCP(sport=6, dport=80) / Raw(b"f" * 600), 256):
        frames.append(bytes(_eth() / p))
    for p in fragment(IP(src="198.51.100.12", dst=DNS4, id=4243) / UDP(sport=6, dport=53) / Raw(b"g" * 600), 256):
        frames.append(bytes(_eth() / p))
    return frames


def mutate(frame: bytes, rng: random.Random) -> bytes:
    """One structure-blind mutation: truncate, flip bits, or rewrite a length/IHL byte."""
    b = bytearray(frame)
    kind = rng.randrange(4)
    if kind == 0:
        return bytes(b[: rng.randrange(14, max(15, len(b)))])
    if kind == 1:
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(12, len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 2:
        l3 = 18 if b[12:14] == b"\x81\x00" else 14
        for off in (l3, l3 + 2, l3 + 3, l3 + 4, l3 + 5, l3 + 6, l3 + 9, l3 + 20):
            if off < len(b) and rng.random() < 0.4:
                b[off] = rng.randrange(256)
    else:
        b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    return bytes(b)


def corpus(seed: int = 16, mutations: int = 1500) -> list[bytes]:
    base = base_frames()
    rng = random.Random(seed)
    out = list(base)
    for _ in range(mutations):
        out.append(mutate(rng.choice(base), rng))
    return [f for f in out if 14 <= len(f) <= MAX_FRAME]
