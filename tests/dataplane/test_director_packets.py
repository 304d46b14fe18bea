"""The director program, packet by packet, under BPF_PROG_TEST_RUN.

Every forwarded packet is compared byte for byte with the frame ``director_ref`` builds
independently (pure-Python SipHash of the flow the test states, the rows the test made,
upstream's wire format); a few tests also decode the output with scapy and check the
fields one by one, so a shared mistake in the reference would still show.
"""

from __future__ import annotations

import ipaddress
import random
import struct

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from glb_agent.dataplane.bpfcore import testrun
from glb_agent.dataplane.bpfcore.testrun import XDP_DROP, XDP_PASS, XDP_TX
from tests.dataplane.conftest import DNS, RANGE, WEB, Loaded, make_rows, standard_tables
from tests.dataplane.director_ref import Director, Flow, ones_complement_checksum

pytestmark = pytest.mark.bpf

DIR_MAC = "02:47:4c:00:00:11"
CLIENT_MAC = "02:00:00:00:aa:01"
VIP, VIP6 = "203.0.113.10", "2001:db8:100::10"
DNS4, DNS6 = "203.0.113.53", "2001:db8:100::53"


def eth() -> Ether:
    return Ether(src=CLIENT_MAC, dst=DIR_MAC)


def run(d: Loaded, frame: bytes) -> testrun.RunResult:
    return testrun.run(d.fd, frame)


def assert_forwarded(d: Loaded, frame: bytes, table: str, flow: Flow, hint: int, vlan_tci: int | None = None
                     ) -> bytes:
    res = run(d, frame)
    assert res.action == XDP_TX, f"expected TX, got {res.action_name}"
    expected = d.ref.encap(frame, d.tables[table], flow, hint, vlan_tci=vlan_tci)
    assert res.packet.hex() == expected.hex()
    return res.packet


def assert_untouched(d: Loaded, frame: bytes, action: int = XDP_PASS) -> None:
    res = run(d, frame)
    assert res.action == action, f"expected {testrun.XDP_ACTION_NAMES[action]}, got {res.action_name}"
    if action == XDP_PASS:
        assert res.packet == frame


def counters(d: Loaded) -> dict[str, dict[str, int]]:
    return d.state.counters()  # type: ignore[attr-defined]


# --- forwarding -----------------------------------------------------------------------------

def test_ipv4_tcp_many_clients_land_on_their_rows(director: Loaded) -> None:
    rng = random.Random(7)
    primaries = set()
    for _ in range(60):
        client = str(ipaddress.IPv4Address(rng.getrandbits(32) | 0x01000000))
        sport = rng.randrange(1024, 65536)
        frame = bytes(eth() / IP(src=client, dst=VIP, id=rng.randrange(65536)) / TCP(sport=sport, dport=80, flags="S"))
        out = assert_forwarded(director, frame, "web", Flow(client, VIP, sport, 80), hint=sport)
        primaries.add(out[30:34])
    assert len(primaries) == 4, "60 clients should reach all four backends"


def test_every_outer_field_decoded(director: Loaded) -> None:
    client, sport = "198.51.100.7", 40000
    inner = IP(src=client, dst=VIP, ttl=37, id=999) / TCP(sport=sport, dport=443, flags="PA") / Raw(b"x" * 100)
    frame = bytes(eth() / inner)
    res = run(director, frame)
    assert res.action == XDP_TX
    table = director.tables["web"]
    h = director.ref.pkt_hash(table, Flow(client, VIP, sport, 443))
    primary, secondary = table.hops(h)
    out = Ether(res.packet)
    assert (out.dst, out.src, out.type) == ("02:47:4c:00:00:01", DIR_MAC, 0x0800)
    ip = out[IP]
    assert (ip.version, ip.ihl, ip.tos, ip.id, ip.flags.value, ip.frag, ip.ttl, ip.proto) == (4, 5, 0, 0, 2, 0, 64, 17)
    assert (ip.src, ip.dst) == ("198.18.0.11", str(primary))
    assert ip.len == len(bytes(inner)) + 40
    assert ones_complement_checksum(res.packet[14:34]) == 0, "outer IPv4 checksum must verify"
    udp = out[UDP]
    assert udp.dport == 19523 and udp.chksum == 0 and udp.len == len(bytes(inner)) + 20
    assert udp.sport == 0x8000 | ((h ^ sport) & 0x7FFF)
    gue = bytes(udp.payload)[:12]
    assert gue[0] == 2 and gue[1] == 4 and gue[2:4] == b"\0\0"  # version 0, hlen 2, IPv4
    assert gue[4:8] == bytes([0, 0, 0, 1])  # private type 0, next hop 0, one hop
    assert gue[8:12] == secondary.packed
    assert bytes(udp.payload)[12:] == bytes(inner), "inner packet must be intact (TTL included)"


def test_ipv4_udp(director: Loaded) -> None:
    frame = bytes(eth() / IP(src="198.51.100.9", dst=DNS4) / UDP(sport=5353, dport=53) / Raw(b"q" * 30))
    assert_forwarded(director, frame, "dns", Flow("198.51.100.9", DNS4, 5353, 53), hint=5353)


def test_ipv6_tcp_and_udp(director: Loaded) -> None:
    client = "2001:db8:aaaa::7"
    frame = bytes(eth() / IPv6(src=client, dst=VIP6, fl=0x12345) / TCP(sport=5555, dport=80))
    out = assert_forwarded(director, frame, "web", Flow(client, VIP6, 5555, 80), hint=5555)
    assert out[14 + 29] == 41, "GUE proto 41 for IPv6 inside"
    frame = bytes(eth() / IPv6(src=client, dst=DNS6) / UDP(sport=999, dport=53) / Raw(b"z" * 10))
    assert_forwarded(director, frame, "dns", Flow(client, DNS6, 999, 53), hint=999)


def test_ipv6_extension_header_before_tcp(director: Loaded) -> None:
    client = "2001:db8:aaaa::8"
    frame = bytes(eth() / IPv6(src=client, dst=VIP6) / IPv6ExtHdrDestOpt() / TCP(sport=1000, dport=80))
    assert_forwarded(director, frame, "web", Flow(client, VIP6, 1000, 80), hint=1000)


@pytest.mark.parametrize("port,hit", [(8000, True), (8050, True), (8100, True), (7999, False), (8101, False)])
def test_port_range_edges(director: Loaded, port: int, hit: bool) -> None:
    frame = bytes(eth() / IP(src="198.51.100.20", dst="203.0.113.5") / TCP(sport=2000, dport=port))
    if hit:
        assert_forwarded(director, frame, "range", Flow("198.51.100.20", "203.0.113.5", 2000, port), hint=2000)
    else:
        assert_untouched(director, frame)


def test_cidr_binds_and_most_specific_wins(director: Loaded) -> None:
    for vip in ("203.0.113.0", "203.0.113.15", VIP):  # VIP is inside the /28 too
        frame = bytes(eth() / IP(src="198.51.100.21", dst=vip) / TCP(sport=3000, dport=8080))
        assert_forwarded(director, frame, "range", Flow("198.51.100.21", vip, 3000, 8080), hint=3000)
    frame = bytes(eth() / IP(src="198.51.100.21", dst="203.0.113.16") / TCP(sport=3000, dport=8080))
    assert_untouched(director, frame)
    frame = bytes(eth() / IP(src="198.51.100.21", dst=VIP) / TCP(sport=3000, dport=80))
    assert_forwarded(director, frame, "web", Flow("198.51.100.21", VIP, 3000, 80), hint=3000)
    v6 = "2001:db8:300::abcd"
    frame = bytes(eth() / IPv6(src="2001:db8:aaaa::1", dst=v6) / UDP(sport=7, dport=5999))
    assert_forwarded(director, frame, "range", Flow("2001:db8:aaaa::1", v6, 7, 5999), hint=7)
    frame = bytes(eth() / IPv6(src="2001:db8:aaaa::1", dst="2001:db8:300:1::1") / UDP(sport=7, dport=5999))
    assert_untouched(director, frame)


def test_vlan_tag_kept(director: Loaded) -> None:
    frame = bytes(eth() / Dot1Q(vlan=123, prio=5) / IP(src="198.51.100.30", dst=VIP) / TCP(sport=4000, dport=80))
    out = assert_forwarded(director, frame, "web", Flow("198.51.100.30", VIP, 4000, 80), hint=4000,
                           vlan_tci=(5 << 13) | 123)
    assert Ether(out)[Dot1Q].vlan == 123
    frame = bytes(eth() / Dot1Q(vlan=9) / IP(src="198.51.100.30", dst="192.0.2.1") / TCP(sport=4000, dport=80))
    assert_untouched(director, frame)


def test_ip_options(director: Loaded) -> None:
    for opts in ([IPOption_NOP()] * 4, [IPOption_RR(routers=["192.0.2.1"] * 9)]):
        inner = IP(src="198.51.100.31", dst=VIP, options=opts) / TCP(sport=4001, dport=80)
        frame = bytes(eth() / inner)
        assert frame[14] & 0x0F > 5
        assert_forwarded(director, frame, "web", Flow("198.51.100.31", VIP, 4001, 80), hint=4001)


def test_ethernet_padding_is_carried_but_not_counted(director: Loaded) -> None:
    frame = bytes(eth() / IP(src="198.51.100.32", dst=VIP) / TCP(sport=4002, dport=80)) + b"\0" * 6
    out = assert_forwarded(director, frame, "web", Flow("198.51.100.32", VIP, 4002, 80), hint=4002)
    assert struct.unpack_from(">H", out, 16)[0] == 40 + 40  # outer length from the inner IP length


# --- ICMP -------------------------------------------------------------------------------------

def test_icmp_frag_needed_reaches_the_flows_proxy(director: Loaded) -> None:
    client, cport = "198.51.100.40", 51000
    # What the VIP (a proxy) sent towards the client, quoted back by a router.
    quoted = bytes(IP(src=VIP, dst=client, flags="DF") / TCP(sport=80, dport=cport))[:28]
    frame = bytes(eth() / IP(src="192.0.2.254", dst=VIP) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(quoted))
    flow = Flow(client, VIP, cport, 80)
    out = assert_forwarded(director, frame, "web", flow, hint=cport)
    own = bytes(eth() / IP(src=client, dst=VIP) / TCP(sport=cport, dport=80))
    assert run(director, own).packet[30:34] == out[30:34], "same primary as the client's own packets"


def test_icmp_frag_needed_with_all_hash_fields(director_ports: Loaded) -> None:
    client, cport = "198.51.100.41", 52000
    quoted = bytes(IP(src=VIP, dst=client) / TCP(sport=443, dport=cport))[:28]
    frame = bytes(eth() / IP(src="192.0.2.254", dst=VIP) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(quoted))
    out = assert_forwarded(director_ports, frame, "web", Flow(client, VIP, cport, 443), hint=cport)
    own = bytes(eth() / IP(src=client, dst=VIP) / TCP(sport=cport, dport=443))
    assert run(director_ports, own).packet[30:34] == out[30:34]


def test_icmpv6_packet_too_big(director: Loaded) -> None:
    client, cport = "2001:db8:aaaa::40", 53000
    quoted = bytes(IPv6(src=VIP6, dst=client) / TCP(sport=80, dport=cport))
    frame = bytes(eth() / IPv6(src="2001:db8:ffff::1", dst=VIP6) / ICMPv6PacketTooBig(mtu=1280) / Raw(quoted))
    assert_forwarded(director, frame, "web", Flow(client, VIP6, cport, 80), hint=cport)


@pytest.mark.parametrize("icmp_type,code", [(3, 1), (3, 3), (11, 0), (12, 0)])
def test_other_icmpv4_errors_follow_the_flow(director: Loaded, icmp_type: int, code: int) -> None:
    client, cport = "198.51.100.42", 54000 + icmp_type
    quoted = bytes(IP(src=VIP, dst=client) / TCP(sport=80, dport=cport))[:28]
    frame = bytes(eth() / IP(src="192.0.2.254", dst=VIP) / ICMP(type=icmp_type, code=code) / Raw(quoted))
    assert_forwarded(director, frame, "web", Flow(client, VIP, cport, 80), hint=cport)


@pytest.mark.parametrize("icmp_type", [1, 3, 4])
def test_other_icmpv6_errors_follow_the_flow(director: Loaded, icmp_type: int) -> None:
    client, cport = "2001:db8:aaaa::42", 55000 + icmp_type
    quoted = bytes(IPv6(src=DNS6, dst=client) / UDP(sport=53, dport=cport))
    body = struct.pack(">BBHI", icmp_type, 0, 0, 0) + quoted
    frame = bytes(eth() / IPv6(src="2001:db8:ffff::1", dst=DNS6, nh=58) / Raw(body))
    assert_forwarded(director, frame, "dns", Flow(client, DNS6, cport, 53), hint=cport)


def test_icmp_error_quoting_another_source_is_dropped(director: Loaded) -> None:
    quoted = bytes(IP(src="203.0.113.11", dst="198.51.100.1") / TCP(sport=80, dport=1))[:28]
    frame = bytes(eth() / IP(src="192.0.2.254", dst=VIP) / ICMP(type=3, code=4) / Raw(quoted))
    assert_untouched(director, frame, XDP_DROP)


def test_echo_requests_are_spread_and_other_icmp_passes(director: Loaded) -> None:
    for client, ident in (("198.51.100.50", 1234), ("198.51.100.51", 77)):
        frame = bytes(eth() / IP(src=client, dst=VIP, id=ident) / ICMP(type=8, id=5, seq=1) / Raw(b"ping"))
        assert_forwarded(director, frame, "web", Flow(client, VIP), hint=ident)
    frame = bytes(eth() / IPv6(src="2001:db8:aaaa::50", dst=VIP6, fl=0xABCDE) / ICMPv6EchoRequest(id=1))
    assert_forwarded(director, frame, "web", Flow("2001:db8:aaaa::50", VIP6), hint=0xBCDE)
    before = counters(director)["web"]["pass_icmp_packets"]
    assert_untouched(director, bytes(eth() / IP(src="198.51.100.50", dst=VIP) / ICMP(type=0)))
    assert_untouched(director, bytes(eth() / IPv6(src="2001:db8:aaaa::50", dst=VIP6) / ICMPv6EchoReply()))
    assert_untouched(director, bytes(eth() / IPv6(src="fe80::1", dst=VIP6, hlim=255) / ICMPv6ND_NS(tgt=VIP6)))
    assert counters(director)["web"]["pass_icmp_packets"] == before + 3


# --- fragments --------------------------------------------------------------------------------

def test_fragments_follow_the_first_when_the_table_is_unambiguous(director: Loaded) -> None:
    client = "198.51.100.60"
    frags = fragment(IP(src=client, dst=DNS4, id=4242) / UDP(sport=5000, dport=53) / Raw(b"d" * 3000), 1000)
    assert len(frags) == 4
    for frag in frags:
        assert_forwarded(director, bytes(eth() / frag), "dns", Flow(client, DNS4), hint=4242)
    v6frags = fragment6_pair("2001:db8:aaaa::60", DNS6, 53)
    for frag in v6frags:
        assert_forwarded(director, frag, "dns", Flow("2001:db8:aaaa::60", DNS6), hint=0x0777)


def fragment6_pair(src: str, dst: str, dport: int) -> list[bytes]:
    payload = bytes(UDP(sport=6000, dport=dport) / Raw(b"e" * 64))
    first = eth() / IPv6(src=src, dst=dst, fl=0x10777) / IPv6ExtHdrFragment(id=9, m=1, offset=0, nh=17) / Raw(payload[:32])
    second = eth() / IPv6(src=src, dst=dst, fl=0x10777) / IPv6ExtHdrFragment(id=9, m=0, offset=4, nh=17) / Raw(payload[32:])
    return [bytes(first), bytes(second)]


def test_fragments_dropped_when_ambiguous_or_hash_uses_ports(director: Loaded, director_ports: Loaded) -> None:
    # 203.0.113.10/tcp belongs to web (80, 443) and range (8000-8100, via the /28).
    frags = fragment(IP(src="198.51.100.61", dst=VIP, id=1) / TCP(sport=1, dport=80) / Raw(b"w" * 2000), 1000)
    before = counters(director)["web"]["drop_fragment_packets"]
    for frag in frags:
        assert_untouched(director, bytes(eth() / frag), XDP_DROP)
    assert counters(director)["web"]["drop_fragment_packets"] == before + len(frags)
    frags = fragment(IP(src="198.51.100.61", dst=DNS4, id=2) / UDP(sport=1, dport=53) / Raw(b"w" * 2000), 1000)
    for frag in frags:
        assert_untouched(director_ports, bytes(eth() / frag), XDP_DROP)
    for frag in fragment6_pair("2001:db8:aaaa::61", DNS6, 53):
        assert_untouched(director_ports, frag, XDP_DROP)
    # Fragments to a non-VIP are none of our business.
    frags = fragment(IP(src="198.51.100.61", dst="192.0.2.7", id=3) / UDP() / Raw(b"w" * 2000), 1000)
    for frag in frags:
        assert_untouched(director, bytes(eth() / frag))


def test_ports_hash_uses_every_field(director_ports: Loaded) -> None:
    for sport in (1000, 1001, 1002):
        frame = bytes(eth() / IP(src="198.51.100.62", dst=VIP) / TCP(sport=sport, dport=80))
        assert_forwarded(director_ports, frame, "web", Flow("198.51.100.62", VIP, sport, 80), hint=sport)
    frame = bytes(eth() / IPv6(src="2001:db8:aaaa::62", dst=VIP6) / TCP(sport=1, dport=80))
    assert_forwarded(director_ports, frame, "web", Flow("2001:db8:aaaa::62", VIP6, 1, 80), hint=1)


# --- not ours / broken ------------------------------------------------------------------------

@pytest.mark.parametrize("pkt", [
    Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=VIP),
    Ether(src=CLIENT_MAC, dst=DIR_MAC) / IP(src="198.51.100.1", dst="192.0.2.1") / TCP(dport=80),
    Ether(src=CLIENT_MAC, dst=DIR_MAC) / IP(src="198.51.100.1", dst=VIP) / UDP(dport=80),
    Ether(src=CLIENT_MAC, dst=DIR_MAC) / IP(src="198.51.100.1", dst=VIP, proto=47) / Raw(b"gre!" * 4),
    Ether(src=CLIENT_MAC, dst=DIR_MAC) / IP(src="198.51.100.1", dst=VIP) / TCP(dport=22),
    Ether(src=CLIENT_MAC, dst=DIR_MAC) / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(dport=80),
    Ether(src=CLIENT_MAC, dst=DIR_MAC, type=0x88B5) / Raw(b"\x45" + bytes(40)),
], ids=["arp", "other-dst", "wrong-proto", "gre", "unbound-port", "v6-other", "unknown-ethertype"])
def test_not_for_a_vip_passes_untouched(director: Loaded, pkt: Ether) -> None:
    assert_untouched(director, bytes(pkt))


def _ipv4_to_vip(**fields: int) -> bytearray:
    frame = bytearray(bytes(eth() / IP(src="198.51.100.70", dst=VIP) / TCP(sport=1, dport=80)))
    for name, value in fields.items():
        off, fmt = {"verihl": (14, ">B"), "totlen": (16, ">H")}[name]
        struct.pack_into(fmt, frame, off, value)
    return frame


@pytest.mark.parametrize("frame", [
    bytes(_ipv4_to_vip(totlen=60)),  # claims more than the frame holds
    bytes(_ipv4_to_vip(totlen=19)),  # shorter than its own header
    bytes(_ipv4_to_vip(verihl=0x44)),  # IHL 4
    bytes(_ipv4_to_vip(verihl=0x55)),  # version 5
    bytes(_ipv4_to_vip(totlen=30)),  # TCP header cut to 10 bytes
    bytes(eth() / IP(src="198.51.100.70", dst=VIP, ihl=15) / TCP(dport=80))[:60],  # options run past
    bytes(eth() / IP(src="198.51.100.70", dst=DNS4, len=24) / UDP(dport=53)),  # 4-byte UDP header
    bytes(eth() / IPv6(src="2001:db8::70", dst=VIP6, plen=200) / TCP(dport=80)),
    bytes(eth() / IPv6(src="2001:db8::70", dst=VIP6, plen=8) / TCP(dport=80))[:62],
    bytes(eth() / IP(src="192.0.2.254", dst=VIP) / ICMP(type=3, code=4) / Raw(b"\x45" + bytes(10))),
], ids=["totlen-long", "totlen-short", "ihl-4", "version-5", "tcp-short", "options-past-end", "udp-short",
        "v6-plen-long", "v6-tcp-short", "icmp-quote-short"])
def test_malformed_vip_traffic_is_dropped(director: Loaded, frame: bytes) -> None:
    before = sum(c["drop_malformed_packets"] for c in counters(director).values())
    assert_untouched(director, frame, XDP_DROP)
    assert sum(c["drop_malformed_packets"] for c in counters(director).values()) == before + 1


@pytest.mark.parametrize("frame", [
    bytes(eth())[:14] + b"\x08\x00",  # IPv4 ethertype, no header
    bytes(eth() / IP(src="198.51.100.70", dst=VIP))[:30],  # 16 bytes of IPv4 header
    bytes(eth() / Dot1Q(vlan=1))[:16],  # tag cut short
    bytes(eth() / IPv6(src="2001:db8::70", dst=VIP6))[:50],
], ids=["no-ip-header", "ip-header-cut", "vlan-cut", "v6-header-cut"])
def test_unreadable_headers_pass(director: Loaded, frame: bytes) -> None:
    assert_untouched(director, frame)


def test_random_garbage_never_escapes(director: Loaded) -> None:
    """Random headers to the VIP: the program never aborts, and whatever it forwards is a
    well-formed GUE packet to one of web's or range's backends with the input intact."""
    rng = random.Random(99)
    backends = {b.ip.packed for t in (WEB, RANGE) for b in t.backends}
    base = bytes(eth() / IP(src="198.51.100.80", dst=VIP) / TCP(sport=1, dport=80) / Raw(bytes(40)))
    seen = set()
    for _ in range(400):
        frame = bytearray(base[: rng.randrange(34, len(base) + 1)])
        for _ in range(rng.randrange(1, 6)):
            pos = rng.choice([14, 15, 16, 17, 20, 21, 23, 34, 35, 36, 37, rng.randrange(14, len(frame))])
            if pos < len(frame):
                frame[pos] = rng.randrange(256)
        res = run(director, bytes(frame))
        seen.add(res.action)
        assert res.action in (XDP_PASS, XDP_DROP, XDP_TX)
        if res.action == XDP_TX:
            assert res.packet[30:34] in backends and res.packet[50:54] in backends
            assert ones_complement_checksum(res.packet[14:34]) == 0
            assert res.packet[54:] == bytes(frame[14:])
        elif res.action == XDP_PASS:
            assert res.packet == bytes(frame)
    assert seen == {XDP_PASS, XDP_DROP, XDP_TX}


# --- limits and counters ----------------------------------------------------------------------

def test_mtu_limit(director: Loaded) -> None:
    fits = bytes(eth() / IP(src="198.51.100.90", dst=VIP) / TCP(sport=9, dport=80) / Raw(b"m" * (1460 - 40)))
    assert_forwarded(director, fits, "web", Flow("198.51.100.90", VIP, 9, 80), hint=9)
    big = bytes(eth() / IP(src="198.51.100.90", dst=VIP) / TCP(sport=9, dport=80) / Raw(b"m" * (1461 - 40)))
    before = counters(director)["web"]["drop_too_big_packets"]
    assert_untouched(director, big, XDP_DROP)
    assert counters(director)["web"]["drop_too_big_packets"] == before + 1


def test_table_without_backends_drops(director: Loaded) -> None:
    before = counters(director)["empty"]["drop_no_backend_packets"]
    assert_untouched(director, bytes(eth() / IP(src="198.51.100.91", dst="203.0.113.99") / TCP(dport=80)), XDP_DROP)
    assert counters(director)["empty"]["drop_no_backend_packets"] == before + 1


def test_counters_count_packets_and_bytes(director: Loaded) -> None:
    c0 = counters(director)
    frame = bytes(eth() / IP(src="198.51.100.92", dst=DNS4) / UDP(sport=1, dport=53))
    for _ in range(5):
        run(director, frame)
    not_vip = bytes(eth() / IP(src="198.51.100.92", dst="192.0.2.9") / UDP(sport=1, dport=53))
    for _ in range(3):
        run(director, not_vip)
    c1 = counters(director)
    assert c1["dns"]["forwarded_packets"] - c0["dns"]["forwarded_packets"] == 5
    assert c1["dns"]["forwarded_bytes"] - c0["dns"]["forwarded_bytes"] == 5 * (len(frame) + 40)
    assert c1["_unmatched"]["pass_not_vip_packets"] - c0["_unmatched"]["pass_not_vip_packets"] == 3
    assert c1["_unmatched"]["pass_not_vip_bytes"] - c0["_unmatched"]["pass_not_vip_bytes"] == 3 * len(not_vip)
    assert c1["web"] == c0["web"]


# --- table swaps ------------------------------------------------------------------------------

def test_swap_changes_rows_binds_and_keys_together(director: Loaded) -> None:
    from dataclasses import replace

    client = "198.51.100.93"
    frame = bytes(eth() / IP(src=client, dst=VIP) / TCP(sport=7, dport=80))
    new_web = replace(WEB, hash_key=bytes(range(100, 116)), binds=WEB.binds[:1])
    try:
        gen0 = director.state.ctl()[0]  # type: ignore[attr-defined]
        gen1 = director.load([(new_web, make_rows(4, 11)), (DNS, make_rows(2, 2))])
        assert gen1 == 1 - gen0
        assert_forwarded(director, frame, "web", Flow(client, VIP, 7, 80), hint=7)
        # 443 and the range table are gone with the new generation.
        assert_untouched(director, bytes(eth() / IP(src=client, dst=VIP) / TCP(sport=7, dport=443)))
        assert_untouched(director, bytes(eth() / IP(src=client, dst="203.0.113.1") / TCP(sport=7, dport=8000)))
        counts = counters(director)
        assert "range" not in counts and "web" in counts
    finally:
        director.load(standard_tables())
    assert_forwarded(director, frame, "web", Flow(client, VIP, 7, 80), hint=7)


def test_table_rows_change_with_a_swap(director: Loaded) -> None:
    rows_a, rows_b = make_rows(4, 21), make_rows(4, 22)
    clients = [f"198.51.100.{i}" for i in range(100, 140)]
    try:
        for rows in (rows_a, rows_b, rows_a):
            director.load([(WEB, rows)])
            for c in clients:
                frame = bytes(eth() / IP(src=c, dst=VIP) / TCP(sport=5, dport=80))
                assert_forwarded(director, frame, "web", Flow(c, VIP, 5, 80), hint=5)
    finally:
        director.load(standard_tables())


# --- K-wide rows (issue 15): the send order becomes the hop list ------------------------------

def _director(hash_fields: tuple[str, ...], row_width: int, alt_hash_fields: tuple[str, ...] = ()) -> Loaded:
    from glb_agent.dataplane.director import DirectorProgram, DirectorState
    from glb_agent.dataplane.director_maps import BuildOptions
    from tests.dataplane.conftest import GW_MAC, SOURCE_IP, SRC_MAC

    opts = BuildOptions(ipaddress.IPv4Address(SOURCE_IP), SRC_MAC, GW_MAC, hash_fields, mtu=1500,
                        row_width=row_width, alt_hash_fields=alt_hash_fields)
    program = DirectorProgram(opts)
    state = DirectorState(program.map_fds, opts.max_tables, opts.max_binds)
    return Loaded(program, state, Director(SOURCE_IP, SRC_MAC, GW_MAC, hash_fields), {})


@pytest.fixture(scope="module")
def director_k4(director: Loaded) -> Loaded:
    """Rows of four: the destination and up to three hops (``director`` checks bpf is here)."""
    return _director(("src_addr",), 4)


def _k_rows(n_backends: int, used: np.ndarray, seed: int) -> np.ndarray:
    """Rows of distinct backends in random order, row r using used[r] entries, -1 after."""
    rng = np.random.default_rng(seed)
    rows = np.argsort(rng.random((65536, n_backends)), axis=1)[:, :4].astype(np.int32)
    rows[np.arange(4)[None, :] >= used[:, None]] = -1
    return rows


@pytest.mark.parametrize("fam", [4, 6])
def test_k_wide_rows_send_to_the_first_and_list_the_rest_as_hops(director_k4: Loaded, fam: int) -> None:
    used = np.random.default_rng(5).integers(1, 5, 65536)  # 1-4 entries: 0-3 hops
    director_k4.load([(WEB, _k_rows(4, used, 6)), (DNS, make_rows(2, 2))])
    table = director_k4.tables["web"]
    rng = random.Random(11)
    seen = set()
    for _ in range(80):
        if fam == 4:
            client = str(ipaddress.IPv4Address(rng.getrandbits(32) | 0x01000000))
            frame = bytes(eth() / IP(src=client, dst=VIP) / TCP(sport=1234, dport=80, flags="A"))
            vip = VIP
        else:
            client = str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(64)))
            frame = bytes(eth() / IPv6(src=client, dst=VIP6) / TCP(sport=1234, dport=80, flags="A"))
            vip = VIP6
        out = assert_forwarded(director_k4, frame, "web", Flow(client, vip, 1234, 80), hint=1234)
        order = table.send_order(director_k4.ref.pkt_hash(table, Flow(client, vip, 1234, 80)))
        assert out[30:34] == order[0] and out[14 + 20 + 8 + 7] == len(order) - 1  # dest, hop_count
        seen.add(len(order) - 1)
    assert seen == {0, 1, 2, 3}, "every hop count 0-3 must have been exercised"


def test_k_wide_mtu_counts_four_bytes_per_hop(director_k4: Loaded) -> None:
    """A packet that fits with one hop but not with three is dropped as too big."""
    used = np.full(65536, 4)
    director_k4.load([(WEB, _k_rows(4, used, 7)), (DNS, make_rows(2, 2))])
    inner_len = 1500 - 40  # fits exactly with one hop (40 bytes), 8 bytes over with three
    frame = bytes(eth() / IP(src="198.51.100.7", dst=VIP) / TCP(sport=1, dport=80) / Raw(b"x" * (inner_len - 40)))
    before = counters(director_k4)["web"]["drop_too_big_packets"]
    assert_untouched(director_k4, frame, XDP_DROP)
    assert counters(director_k4)["web"]["drop_too_big_packets"] == before + 1
    frame = bytes(eth() / IP(src="198.51.100.7", dst=VIP) / TCP(sport=1, dport=80) / Raw(b"x" * (inner_len - 48)))
    assert_forwarded(director_k4, frame, "web", Flow("198.51.100.7", VIP, 1, 80), hint=1)


def test_upstream_alt_hash_fields_migration_vector(director: Loaded) -> None:
    """Upstream's test_director_hash_fields migration case, same fixture and packet: hash on
    (src_addr, src_port) while migrating from (src_addr): destination = first of the new
    row, hops = the rest of it, then the whole old row. Upstream expects the route
    [1.2.3.4, 2.3.4.5, 3.4.5.6, 2.3.4.5]: hop_count 3. (Upstream's addresses; the packet
    only exists in memory under BPF_PROG_TEST_RUN.)"""
    from glb_agent.table.rendezvous import build_rows
    from glb_agent.table.spec import Backend, Bind, TableSpec

    key = bytes.fromhex("12345678901234561234567890123456")
    spec = TableSpec("upstream", key, bytes.fromhex("34567890123456783456789012345678"),
                     (Bind(ipaddress.ip_network("1.1.1.1/32"), "tcp", 80, 80),),
                     tuple(Backend(ipaddress.ip_address(a)) for a in ("1.2.3.4", "2.3.4.5", "3.4.5.6")))
    d = _director(("src_addr", "src_port"), 2, alt_hash_fields=("src_addr",))
    d.load([(spec, build_rows(spec))])
    table = d.tables["upstream"]
    expected = {45678: ["1.2.3.4", "2.3.4.5", "3.4.5.6", "2.3.4.5"],
                45679: ["1.2.3.4", "3.4.5.6", "3.4.5.6", "2.3.4.5"],
                45680: ["2.3.4.5", "3.4.5.6", "3.4.5.6", "2.3.4.5"]}
    for sport, route in expected.items():
        frame = bytes(eth() / IP(src="10.11.12.13", dst="1.1.1.1") / TCP(sport=sport, dport=80))
        res = run(d, frame)
        assert res.action == XDP_TX
        out = Ether(res.packet)
        gue = bytes(out[UDP].payload)
        hops = [str(ipaddress.IPv4Address(gue[8 + 4 * i:12 + 4 * i])) for i in range(gue[7])]
        assert [out[IP].dst, *hops] == route
        assert (gue[0], gue[6], gue[7]) == (4, 0, 3)  # hlen 1 + 3 hops, next_hop 0, hop_count 3
        # Whole frame: new-fields hash for the row and the UDP source port, old-fields row after.
        new = d.ref.pkt_hash(table, Flow("10.11.12.13", "1.1.1.1", sport, 80))
        old = Director("198.18.0.11", "02:47:4c:00:00:11", "02:47:4c:00:00:01", ("src_addr",)).pkt_hash(
            table, Flow("10.11.12.13", "1.1.1.1", sport, 80))
        hops_b = table.send_order(new)[1:] + table.send_order(old)
        assert res.packet == d.ref.encap_hops(frame, new, sport, table.send_order(new)[0], *hops_b)
