"""Every decision of bpf/proxy.c, run by the kernel on crafted packets (BPF_PROG_TEST_RUN).

The program is loaded and attached by the real loader in a namespace that looks like a
proxy host. Tests that need "a connection this host knows" create real sockets in that
namespace (the test thread lives in it), because socket lookups see the caller's namespace.
Each test asserts the verdict, the bytes that come out, and exactly which counters moved.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether

from glb_agent.dataplane.bpfcore import testrun
from glb_agent.dataplane.bpfcore.testrun import XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX
from tests.proxy.conftest import (
    CLIENT4,
    CLIENT6,
    DIRECTOR,
    PEER,
    PEER_MAC,
    PROXY,
    UNRESOLVED,
    VIP4,
    VIP6,
    ProxyHost,
)
from tests.proxy.support import gue_frame, ipv4_checksum_ok, run_on, sysctl, tcp_packet

pytestmark = [pytest.mark.bpf, pytest.mark.netns]

OUTER = 14 + 20 + 8  # Ethernet + IPv4 + UDP in front of the GUE header


class Delta:
    """Counter changes across a block; ``changed`` lists only the counters that moved."""

    def __init__(self, host: ProxyHost) -> None:
        self.host = host
        self.before = host.counters()
        self.changed: dict[str, int] = {}

    def done(self) -> None:
        after = self.host.counters()
        self.changed = {k: after[k] - self.before.get(k, 0) for k in after if after[k] != self.before.get(k, 0)}


@contextlib.contextmanager
def counting(host: ProxyHost) -> Iterator[Delta]:
    d = Delta(host)
    yield d
    d.done()


def decide(host: ProxyHost, frame: bytes, ingress: int = 0) -> tuple[testrun.RunResult, dict[str, int]]:
    with counting(host) as d:
        res = run_on(host.prog_fd, frame, ingress)
    return res, d.changed


def assert_forwarded_tx(host: ProxyHost, frame: bytes, next_hop: int = 1) -> None:
    """Second chance out of the receiving interface: XDP_TX, the frame rewritten for the
    next hop (check_forwarded), and exactly rx_gue + forwarded_tx counted."""
    res, changed = decide(host, frame, host.ifindex)
    assert res.action == XDP_TX, res.action_name
    check_forwarded(host, frame, res, next_hop=next_hop)
    assert changed == {"rx_gue": 1, "forwarded_tx": 1}


def assert_accepted(host: ProxyHost, frame: bytes, inner: bytes, counter: str) -> None:
    """Taken here: decapsulated (assert_decapsulated), exactly rx_gue + ``counter`` counted."""
    res, changed = decide(host, frame)
    assert_decapsulated(res, frame, inner)
    assert changed == {"rx_gue": 1, counter: 1}


def assert_decapsulated(res: testrun.RunResult, frame: bytes, inner: bytes) -> None:
    """XDP_PASS of exactly Ethernet (same MACs, inner ethertype) + the original inner packet."""
    assert res.action == XDP_PASS, res.action_name
    ethertype = b"\x08\x00" if inner[0] >> 4 == 4 else b"\x86\xdd"
    assert res.packet == frame[:12] + ethertype + inner


# -- traffic that is not ours ---------------------------------------------------------------

@pytest.mark.parametrize("frame", [
    bytes(Ether() / IP(src=DIRECTOR, dst=PROXY) / TCP(dport=22)),
    bytes(Ether() / IP(src=DIRECTOR, dst=PROXY) / UDP(dport=53) / (b"x" * 20)),
    bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8:1::21") / UDP(dport=19523) / (b"x" * 20)),
    bytes(Ether(type=0x0806) / (b"\0" * 28)),
    # GUE port, but for another address (routed through, or another local address)
    gue_frame(tcp_packet(CLIENT4, VIP4, 1, 80), src=DIRECTOR, dst="198.18.0.50", hops=[PEER]),
], ids=["tcp", "udp", "ipv6-udp-19523", "arp", "gue-not-for-us"])
def test_non_gue_passes_untouched(proxy_host: ProxyHost, frame: bytes) -> None:
    res, changed = decide(proxy_host, frame)
    assert res.action == XDP_PASS
    assert res.packet == frame
    assert changed == {}


# -- who may send GUE ---------------------------------------------------------------------------

def test_spoofed_sender_is_dropped(proxy_host: ProxyHost) -> None:
    frame = gue_frame(tcp_packet("192.0.2.66", VIP4, 1234, 80, flags="S"), src="192.0.2.66", dst=PROXY)
    res, changed = decide(proxy_host, frame)
    assert res.action == XDP_DROP
    assert changed == {"rx_gue": 1, "drop_sender": 1}


def test_peer_proxy_may_only_forward(proxy_host: ProxyHost) -> None:
    syn = tcp_packet("192.0.2.66", VIP4, 1234, 80, flags="S")
    fresh = gue_frame(syn, src=PEER, dst=PROXY, hops=[PROXY], next_hop=0)
    res, changed = decide(proxy_host, fresh)
    assert res.action == XDP_DROP
    assert changed == {"rx_gue": 1, "drop_sender_role": 1}
    forwarded = gue_frame(syn, src=PEER, dst=PROXY, hops=[PROXY], next_hop=1)
    assert_accepted(proxy_host, forwarded, syn, "accept_syn")


# -- GUE validation ----------------------------------------------------------------------------

SYN4 = tcp_packet("192.0.2.66", VIP4, 1234, 80, flags="S")
SYN6 = tcp_packet("2001:db8:300::66", VIP6, 1234, 80, flags="S")


def _truncate_hops() -> bytes:
    """hop_count 3 announced, but the packet (and UDP length) end after one hop."""
    frame = gue_frame(b"", src=DIRECTOR, dst=PROXY, hops=[PEER], hop_count=3, hlen=4, proto=4)
    return frame


def _udp_len_mismatch() -> bytes:
    frame = bytearray(gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER]))
    frame[14 + 20 + 4: 14 + 20 + 6] = struct.pack("!H", 9)
    return bytes(frame)


def _ip_tot_len_beyond_frame() -> bytes:
    frame = bytearray(gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER]))
    frame[14 + 2: 14 + 4] = struct.pack("!H", len(frame) + 10)
    return bytes(frame)


def _inner_truncated() -> bytes:
    return gue_frame(SYN4[:30], src=DIRECTOR, dst=PROXY, hops=[PEER])


def _inner_claims_more() -> bytes:
    inner = bytearray(SYN4)
    inner[2:4] = struct.pack("!H", len(SYN4) + 40)
    return gue_frame(bytes(inner), src=DIRECTOR, dst=PROXY, hops=[PEER])


@pytest.mark.parametrize(("frame", "counter"), [
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], version=1), "drop_gue_version"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], cbit=1), "drop_gue_version"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], flags=0x8000), "drop_gue_version"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], proto=17), "drop_gue_proto"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], hlen=1), "drop_gue_length"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], hlen=3), "drop_gue_length"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER] * 9), "drop_gue_length"),
    (_truncate_hops(), "drop_gue_length"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], private_type=1), "drop_gue_private"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], next_hop=2), "drop_gue_next_hop"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], ip_flags="MF"), "drop_outer"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], ip_flags="", frag=8), "drop_outer"),
    (_udp_len_mismatch(), "drop_outer"),
    (_ip_tot_len_beyond_frame(), "drop_outer"),
    (gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER], proto=41), "drop_inner"),
    (gue_frame(SYN6, src=DIRECTOR, dst=PROXY, hops=[PEER], proto=4), "drop_inner"),
    (_inner_truncated(), "drop_inner"),
    (_inner_claims_more(), "drop_inner"),
    (gue_frame(tcp_packet("192.0.2.66", "10.1.2.3", 1, 80, flags="S"), src=DIRECTOR, dst=PROXY),
     "drop_inner_dst"),
    (gue_frame(tcp_packet("2001:db8:300::66", "2001:db8:100::99", 1, 80, flags="S"),
               src=DIRECTOR, dst=PROXY), "drop_inner_dst"),
    (gue_frame(bytes(IP(src="192.0.2.66", dst=VIP4, proto=47) / b"gre-payload"), src=DIRECTOR,
               dst=PROXY), "drop_inner_proto"),
    (gue_frame(bytes(IPv6(src="2001:db8:300::66", dst=VIP6, nh=132) / b"sctp-payload"),
               src=DIRECTOR, dst=PROXY), "drop_inner_proto"),
], ids=["version", "c-bit", "flags", "proto", "hlen-short", "hlen-long", "too-many-hops",
        "hops-truncated", "private-type", "next-hop", "outer-mf", "outer-offset",
        "udp-length", "ip-length", "inner-v4-as-v6", "inner-v6-as-v4", "inner-truncated",
        "inner-length", "inner-dst-v4", "inner-dst-v6", "inner-gre", "inner-sctp"])
def test_malformed_is_dropped(proxy_host: ProxyHost, frame: bytes, counter: str) -> None:
    res, changed = decide(proxy_host, frame)
    assert res.action == XDP_DROP
    assert changed == {"rx_gue": 1, counter: 1}


def test_max_hops_is_valid(proxy_host: ProxyHost) -> None:
    frame = gue_frame(SYN4, src=DIRECTOR, dst=PROXY, hops=[PEER] * 8, next_hop=8)
    assert_accepted(proxy_host, frame, SYN4, "accept_syn")


# -- SYN, UDP, ICMP, fragments: accepted on the first proxy ------------------------------------

@pytest.mark.parametrize("inner", [
    SYN4,
    SYN6,
    bytes(IP(src="192.0.2.66", dst=VIP4) / UDP(sport=5000, dport=53) / b"q"),
    bytes(IPv6(src="2001:db8:300::66", dst=VIP6) / UDP(sport=5000, dport=53) / b"q"),
    bytes(IP(src=DIRECTOR, dst=VIP4) / ICMP(type=8, id=7, seq=1) / b"ping"),
    bytes(IP(src=DIRECTOR, dst=PROXY) / ICMP(type=8, id=7, seq=1) / b"glb-hc"),
    bytes(IPv6(src="2001:db8:300::66", dst=VIP6) / ICMPv6EchoRequest(id=7, seq=1)),
    bytes(IP(src="192.0.2.66", dst=VIP4, proto=6, frag=100) / (b"\0" * 40)),
    bytes(IPv6(src="2001:db8:300::66", dst=VIP6) / IPv6ExtHdrFragment(offset=10, nh=6) / (b"\0" * 40)),
], ids=["syn4", "syn6", "udp4", "udp6", "echo-vip", "health-probe", "echo6", "frag4", "frag6"])
def test_accepted_on_first_proxy(proxy_host: ProxyHost, inner: bytes) -> None:
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PEER])
    res, changed = decide(proxy_host, frame)
    assert_decapsulated(res, frame, inner)
    proto = IP(inner).proto if inner[0] >> 4 == 4 else IPv6(inner).nh
    if IP in IP(inner) and inner[0] >> 4 == 4 and IP(inner).frag:
        reason = "accept_fragment"
    else:
        reason = {6: "accept_syn", 17: "accept_udp", 1: "accept_icmp", 58: "accept_icmp",
                  44: "accept_fragment"}[proto]
    assert changed == {"rx_gue": 1, reason: 1}


def test_health_probe_from_health_checker_is_decapsulated(proxy_host: ProxyHost) -> None:
    """The exact probe glb_agent.health sends (0 hops) is handed to the kernel to answer."""
    from ipaddress import IPv4Address

    from glb_agent.health.gue import probe_packet

    ip = probe_packet(IPv4Address(DIRECTOR), IPv4Address(PROXY), IPv4Address(PROXY), 19523, 7, 9)
    frame = bytes(Ether(dst=proxy_host.mac, src="02:00:00:00:00:01", type=0x0800)) + ip
    res, changed = decide(proxy_host, frame)
    assert_decapsulated(res, frame, ip[20 + 8 + 8:])
    assert changed == {"rx_gue": 1, "accept_icmp": 1}


# -- second chance --------------------------------------------------------------------------

def check_forwarded(host: ProxyHost, frame: bytes, res: testrun.RunResult, next_hop: int) -> None:
    out, orig = Ether(res.packet), Ether(frame)
    assert out.dst == PEER_MAC and out.src == host.mac
    assert out[IP].src == PROXY and out[IP].dst == PEER and out[IP].ttl == 64
    assert ipv4_checksum_ok(res.packet[14:34])
    assert res.packet[OUTER + 6] == next_hop  # next_hop byte of the private data
    # Everything else is untouched: UDP ports, GUE, hops, inner packet.
    assert res.packet[OUTER:OUTER + 6] == frame[OUTER:OUTER + 6]
    assert res.packet[OUTER + 7:] == frame[OUTER + 7:]
    assert out[UDP].sport == orig[UDP].sport and out[UDP].dport == 19523
    assert len(res.packet) == len(frame)


@pytest.mark.parametrize("inner", [
    tcp_packet("192.0.2.66", VIP4, 4444, 80),
    tcp_packet("2001:db8:300::66", VIP6, 4444, 80),
], ids=["v4", "v6"])
def test_unknown_connection_goes_to_next_hop(proxy_host: ProxyHost, inner: bytes) -> None:
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PEER])
    assert_forwarded_tx(proxy_host, frame)


def test_forward_through_other_interface_is_a_redirect(proxy_host: ProxyHost) -> None:
    frame = gue_frame(tcp_packet("192.0.2.66", VIP4, 4444, 80), src=DIRECTOR, dst=PROXY, hops=[PEER])
    res, changed = decide(proxy_host, frame)  # received on lo, next hop behind px0
    assert res.action == XDP_REDIRECT
    check_forwarded(proxy_host, frame, res, next_hop=1)
    assert changed == {"rx_gue": 1, "forwarded_redirect": 1}


def test_forward_keeps_a_udp_checksum_valid(proxy_host: ProxyHost) -> None:
    """Directors send checksum 0, but a sender that fills it in must get a valid one back."""
    inner = tcp_packet("192.0.2.66", VIP4, 4445, 80, payload=b"x" * 33)
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=["198.18.0.40", PEER], next_hop=1,
                      udp_checksum=True)
    assert Ether(frame)[UDP].chksum != 0
    res, changed = decide(proxy_host, frame, proxy_host.ifindex)
    assert res.action == XDP_TX
    check_forwarded(proxy_host, frame, res, next_hop=2)
    out = Ether(res.packet)
    got = out[UDP].chksum
    del out[UDP].chksum
    assert Ether(bytes(out))[UDP].chksum == got
    assert changed == {"rx_gue": 1, "forwarded_tx": 1}


def test_second_hop_in_the_list_is_used(proxy_host: ProxyHost) -> None:
    frame = gue_frame(tcp_packet("192.0.2.66", VIP4, 4446, 80), src=PEER, dst=PROXY,
                      hops=[PROXY, PEER], next_hop=1)
    assert_forwarded_tx(proxy_host, frame, next_hop=2)


@pytest.mark.parametrize("inner", [
    tcp_packet("192.0.2.66", VIP4, 4447, 80),
    tcp_packet("2001:db8:300::66", VIP6, 4447, 80),
], ids=["v4", "v6"])
def test_no_hops_left_is_accepted_as_last_resort(proxy_host: ProxyHost, inner: bytes) -> None:
    for hops, next_hop in (([], 0), ([PEER], 1)):
        frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=hops, next_hop=next_hop)
        assert_accepted(proxy_host, frame, inner, "accept_last_resort")


def test_next_hop_equal_to_self_is_taken_here(proxy_host: ProxyHost) -> None:
    inner = tcp_packet("192.0.2.66", VIP4, 4448, 80)
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PROXY])
    assert_accepted(proxy_host, frame, inner, "accept_self_hop")


def test_unresolved_next_hop_is_dropped_not_reset(proxy_host: ProxyHost) -> None:
    """Accepting would make the kernel reset a connection that lives on the next hop."""
    frame = gue_frame(tcp_packet("192.0.2.66", VIP4, 4449, 80), src=DIRECTOR, dst=PROXY,
                      hops=[UNRESOLVED])
    res, changed = decide(proxy_host, frame, proxy_host.ifindex)
    assert res.action == XDP_DROP
    assert changed == {"rx_gue": 1, "drop_fwd_fib": 1}


# -- connections this host knows --------------------------------------------------------------

@pytest.fixture(scope="module")
def sockets(proxy_host: ProxyHost) -> Iterator[dict[str, socket.socket]]:
    """Real listeners and connections in the proxy namespace (the test thread lives there)."""
    made: dict[str, socket.socket] = {}
    for fam, vip, client, key in ((socket.AF_INET, VIP4, CLIENT4, "4"), (socket.AF_INET6, VIP6, CLIENT6, "6")):
        for port, name in ((8080, "lst"), (8081, "req"), (8082, "cookie"), (8083, "only")):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((vip, port))
            s.listen(64)
            made[f"{name}{key}"] = s
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.bind((client, 0))
        c.connect((vip, 8080))
        made[f"cli{key}"] = c
        made[f"srv{key}"], _ = made[f"lst{key}"].accept()
    yield made
    for s in made.values():
        s.close()


def _client_port(s: socket.socket) -> int:
    return s.getsockname()[1]


@pytest.mark.parametrize("fam", ["4", "6"])
def test_established_connection_is_accepted(proxy_host: ProxyHost, sockets: dict, fam: str) -> None:
    client, vip = (CLIENT4, VIP4) if fam == "4" else (CLIENT6, VIP6)
    inner = tcp_packet(client, vip, _client_port(sockets[f"cli{fam}"]), 8080, payload=b"data")
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PEER])
    assert_accepted(proxy_host, frame, inner, "accept_established")


@pytest.mark.parametrize("fam", ["4", "6"])
def test_listener_alone_is_not_a_known_connection(proxy_host: ProxyHost, sockets: dict, fam: str) -> None:
    """An ACK to a listening port with no connection and no valid cookie is someone else's."""
    client, vip = ("192.0.2.70", VIP4) if fam == "4" else ("2001:db8:300::70", VIP6)
    frame = gue_frame(tcp_packet(client, vip, 5555, 8083), src=DIRECTOR, dst=PROXY, hops=[PEER])
    assert_forwarded_tx(proxy_host, frame)


def _send_raw_syn(src: str, dst: str, sport: int, dport: int, isn: int) -> None:
    """A SYN from a client address that is not local (its SYN-ACK leaves through px0)."""
    pkt = tcp_packet(src, dst, sport, dport, flags="S", seq=isn, ack=0)
    fam = socket.AF_INET if ":" not in dst else socket.AF_INET6
    with socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(pkt, (dst, 0))


def _capture_synack(cap: socket.socket, client: str, cport: int, timeout: float = 2.0) -> int:
    """Sequence number (the ISN or cookie) of the SYN-ACK the stack sent to client:cport."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([cap], [], [], 0.1)
        if not ready:
            continue
        frame = Ether(cap.recv(4096))
        ip = frame.getlayer(IP) or frame.getlayer(IPv6)
        if ip is None or TCP not in frame or ip.dst != client:
            continue
        tcp = frame[TCP]
        if tcp.dport == cport and tcp.flags.S and tcp.flags.A:
            return tcp.seq
    raise AssertionError(f"no SYN-ACK to {client}:{cport} seen")


def _syncookies(value: int) -> contextlib.AbstractContextManager[None]:
    return sysctl("net/ipv4/tcp_syncookies", value)


@pytest.fixture
def capture() -> Iterator[socket.socket]:
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    cap.bind(("px1", 0))
    yield cap
    cap.close()


@pytest.mark.parametrize("fam", ["4", "6"])
def test_handshake_in_progress_is_accepted(proxy_host: ProxyHost, sockets: dict,
                                           capture: socket.socket, fam: str) -> None:
    """A SYN was accepted here, so the handshake's ACK finds the request socket."""
    client, vip = ("192.0.2.71", VIP4) if fam == "4" else ("2001:db8:300::71", VIP6)
    with _syncookies(0):
        _send_raw_syn(client, vip, 6001, 8081, isn=1000)
        cookie_or_isn = _capture_synack(capture, client, 6001)
    inner = tcp_packet(client, vip, 6001, 8081, seq=1001, ack=cookie_or_isn + 1)
    res, changed = decide(proxy_host, gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PEER]))
    assert res.action == XDP_PASS
    assert changed == {"rx_gue": 1, "accept_request": 1}


@pytest.mark.parametrize("fam", ["4", "6"])
def test_valid_syncookie_is_accepted_and_a_forged_one_is_not(
        proxy_host: ProxyHost, sockets: dict, capture: socket.socket, fam: str) -> None:
    client, vip = ("192.0.2.72", VIP4) if fam == "4" else ("2001:db8:300::72", VIP6)
    with _syncookies(2):
        _send_raw_syn(client, vip, 6002, 8082, isn=5000)
        cookie = _capture_synack(capture, client, 6002)
        good = tcp_packet(client, vip, 6002, 8082, seq=5001, ack=(cookie + 1) & 0xFFFFFFFF)
        res, changed = decide(proxy_host, gue_frame(good, src=DIRECTOR, dst=PROXY, hops=[PEER]))
        assert res.action == XDP_PASS
        assert changed == {"rx_gue": 1, "accept_syncookie": 1}
        forged = tcp_packet(client, vip, 6002, 8082, seq=5001, ack=(cookie + 12345) & 0xFFFFFFFF)
        res, changed = decide(proxy_host, gue_frame(forged, src=DIRECTOR, dst=PROXY, hops=[PEER]),
                              proxy_host.ifindex)
        assert res.action == XDP_TX
        assert changed == {"rx_gue": 1, "forwarded_tx": 1}


def test_time_wait_is_accepted(proxy_host: ProxyHost, sockets: dict) -> None:
    """The server closed first, so its side of the connection sits in TIME_WAIT here."""
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.bind((CLIENT4, 0))
    c.connect((VIP4, 8080))
    srv, _ = sockets["lst4"].accept()
    port = _client_port(c)
    srv.close()
    c.recv(1)  # EOF: the server's FIN arrived
    c.close()
    deadline = time.monotonic() + 2
    inner = tcp_packet(CLIENT4, VIP4, port, 8080)
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PEER])
    while True:
        res, changed = decide(proxy_host, frame)
        if changed.get("accept_time_wait") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert_decapsulated(res, frame, inner)
    assert changed == {"rx_gue": 1, "accept_time_wait": 1}


# -- ICMP errors that belong to a connection ----------------------------------------------------

def _frag_needed(client: str, vip: str, cport: int, vport: int) -> bytes:
    """What a router sends back when our reply (VIP -> client) is too big for its link."""
    quoted = IPerror(src=vip, dst=client, proto=6) / TCPerror(sport=vport, dport=cport)
    return bytes(IP(src="192.0.2.1", dst=vip) / ICMP(type=3, code=4, nexthopmtu=1400) / bytes(quoted)[:28])


def _ptb6(client: str, vip: str, cport: int, vport: int) -> bytes:
    quoted = IPv6(src=vip, dst=client, nh=6) / TCP(sport=vport, dport=cport)
    return bytes(IPv6(src="2001:db8:ffff::1", dst=vip) / ICMPv6PacketTooBig(mtu=1280) / bytes(quoted))


@pytest.mark.parametrize("fam", ["4", "6"])
def test_pmtu_error_of_known_connection_is_accepted(proxy_host: ProxyHost, sockets: dict, fam: str) -> None:
    port = _client_port(sockets[f"cli{fam}"])
    inner = (_frag_needed(CLIENT4, VIP4, port, 8080) if fam == "4" else _ptb6(CLIENT6, VIP6, port, 8080))
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PEER])
    assert_accepted(proxy_host, frame, inner, "accept_ptb_known")


@pytest.mark.parametrize("fam", ["4", "6"])
def test_pmtu_error_of_unknown_connection_goes_to_next_hop(proxy_host: ProxyHost, sockets: dict, fam: str) -> None:
    inner = (_frag_needed("192.0.2.73", VIP4, 7000, 8080) if fam == "4"
             else _ptb6("2001:db8:300::73", VIP6, 7000, 8080))
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PEER])
    assert_forwarded_tx(proxy_host, frame)
    # The same error with no hop left is taken here.
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PEER], next_hop=1)
    assert_accepted(proxy_host, frame, inner, "accept_last_resort")


def test_pmtu_error_about_udp_is_plain_icmp(proxy_host: ProxyHost) -> None:
    quoted = IPerror(src=VIP4, dst="192.0.2.74", proto=17) / UDP(sport=53, dport=5000)
    inner = bytes(IP(src="192.0.2.1", dst=VIP4) / ICMP(type=3, code=4) / bytes(quoted)[:28])
    frame = gue_frame(inner, src=DIRECTOR, dst=PROXY, hops=[PEER])
    assert_accepted(proxy_host, frame, inner, "accept_icmp")


def test_forwarding_disabled_on_loopback_is_reported(proxy_host: ProxyHost) -> None:
    """The fib lookup needs net.ipv4.conf.lo.forwarding=1; without it forwards are dropped."""
    frame = gue_frame(tcp_packet("192.0.2.66", VIP4, 4450, 80), src=DIRECTOR, dst=PROXY, hops=[PEER])
    with sysctl("net/ipv4/conf/lo/forwarding", 0):
        res, changed = decide(proxy_host, frame, proxy_host.ifindex)
    assert res.action == XDP_DROP
    assert changed == {"rx_gue": 1, "drop_fwd_disabled": 1}
