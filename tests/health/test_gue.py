"""The GUE tunnel probe: wire format, and real probes through a decapsulating receiver.

The receiver is the test-side decapsulator (tests/health/decap.py: UDP socket + TUN), since
the proxy eBPF program had not landed when this was written; the namespace kernel behind
it answers the inner echo as a proxy kernel would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import socket
import struct
import time

import pytest
from scapy.layers.inet import ICMP, IP, UDP

from glb_agent.config.model import GueCheck, HealthCheck
from glb_agent.health import Checker, GueProber, Target, check_once
from glb_agent.health.gue import RECV_BUFFER, SPORT_BASE, checksum, gue_header, parse_icmp, probe_packet
from tests.health.conftest import DIRECTOR, PORT, PROXY, VIP, start_decap
from tests.health.nsthread import run_in_netns


def test_probe_packet_matches_glb_gue_h() -> None:
    pkt = probe_packet(DIRECTOR, PROXY, VIP, PORT, ident=0x1234, seq=0x4321)
    outer = IP(pkt)
    assert (outer.src, outer.dst, outer.ttl, outer.flags, outer.proto) == (str(DIRECTOR), str(PROXY), 64, "DF", 17)
    assert checksum(pkt[:20]) == 0, "outer header checksum"
    udp = outer[UDP]
    assert (udp.dport, udp.chksum, udp.sport) == (PORT, 0, SPORT_BASE | (0x4321 & 0x3FFF))
    assert udp.len == len(pkt) - 20
    gue = bytes(udp.payload)
    # base: version 0, C 0, Hlen 1 (one private word, no hops), proto 4, flags 0
    # private: type 0, next_hop 0, hop_count 0
    assert gue[:8] == bytes([0x01, 4, 0, 0, 0, 0, 0, 0]) == gue_header()
    inner = IP(gue[8:])
    assert (inner.src, inner.dst, inner.ttl, inner.proto) == (str(DIRECTOR), str(VIP), 64, 1)
    assert checksum(gue[8:28]) == 0
    icmp = inner[ICMP]
    assert (icmp.type, icmp.code, icmp.id, icmp.seq) == (8, 0, 0x1234, 0x4321)
    assert checksum(bytes(icmp)) == 0


def test_parse_icmp_reply_and_port_unreachable() -> None:
    reply = bytes(IP(src=str(VIP), dst=str(DIRECTOR)) / ICMP(type=0, id=7, seq=9) / b"x")
    msg = parse_icmp(reply)
    assert msg is not None and (msg.src, msg.type, msg.ident, msg.seq) == (VIP, 0, 7, 9)
    orig = probe_packet(DIRECTOR, PROXY, PROXY, PORT, 7, 9)
    unreach = bytes(IP(src=str(PROXY), dst=str(DIRECTOR)) / ICMP(type=3, code=3) / orig[:28])
    msg = parse_icmp(unreach)
    assert msg is not None and (msg.orig_dst, msg.orig_sport) == (PROXY, SPORT_BASE | 9)
    assert parse_icmp(bytes(IP() / UDP())) is None
    assert parse_icmp(b"\x60" + b"\0" * 40) is None


def probe(inner: ipaddress.IPv4Address, timeout: float = 0.5):
    async def go():
        prober = GueProber()
        prober.open()
        try:
            return await prober.probe(DIRECTOR, PROXY, PORT, timeout, inner)
        finally:
            prober.close()
    return asyncio.run(go())


@pytest.mark.netns
def test_gue_probe_through_a_decapsulating_proxy(gue_lab) -> None:
    lab, d, p = gue_lab
    decap = start_decap(lab, p)
    to_backend = run_in_netns(d, lambda: probe(PROXY))
    assert to_backend.ok, to_backend
    to_vip = run_in_netns(d, lambda: probe(VIP))
    assert to_vip.ok, to_vip
    print(f"\nGUE echo round trip: {to_backend.seconds * 1000:.2f} ms (backend), "
          f"{to_vip.seconds * 1000:.2f} ms (VIP)")
    # what actually arrived at the proxy, as the decapsulator parsed it
    seen = [json.loads(decap.stdout.readline()) for _ in range(2)]
    for got, inner in zip(seen, (PROXY, VIP), strict=True):
        assert got["delivered"] and got["outer_src"] == str(DIRECTOR)
        assert (got["version"], got["c"], got["hlen"], got["proto"], got["hop_count"]) == (0, 0, 1, 4, 0)
        assert (got["inner_src"], got["inner_dst"], got["inner_proto"]) == (str(DIRECTOR), str(inner), 1)
    # an inner address the proxy does not serve is not answered: the probe tests delivery
    unserved = run_in_netns(d, lambda: probe(ipaddress.IPv4Address("203.0.113.99"), timeout=0.3))
    assert not unserved.ok and "timeout" in unserved.detail
    # no decapsulator: the proxy kernel answers "port unreachable" and the probe fails at once
    decap.kill()
    decap.wait(timeout=5)
    dead = run_in_netns(d, lambda: probe(PROXY, timeout=2.0))
    assert not dead.ok and "nothing decapsulates" in dead.detail and dead.seconds < 0.5, dead


@pytest.mark.netns
def test_checker_with_gue_probes_sees_the_decap_go_away(gue_lab) -> None:
    lab, d, p = gue_lab
    decap = start_decap(lab, p)
    target = Target("web", PROXY, HealthCheck(gue=GueCheck(port=PORT)), source=DIRECTOR)
    downs: list[float] = []

    async def scenario() -> tuple[bool, bool, float]:
        got = asyncio.Event()

        def on_change(view, changes) -> None:
            if not view[target.key]:
                downs.append(time.monotonic())
                got.set()

        async with Checker([target], on_change=on_change) as checker:
            await asyncio.sleep(1.0)
            healthy_before = checker.view()[target.key] and checker.stats.last_results[target.key][0].ok
            # through the engine (callbacks, deadline in its heap): an unserved inner address
            # is never answered, so that probe fails at its timeout
            unserved = dataclasses.replace(target, inner=ipaddress.IPv4Address("203.0.113.99"))
            prober = GueProber()
            prober.open()
            try:
                start = time.monotonic()
                (lost,) = (await check_once([unserved], prober))[unserved.key]
                assert time.monotonic() - start >= 0.19 and not lost.ok, lost
                assert lost.detail.endswith("echo 203.0.113.99: timeout"), lost
                assert not prober._pending, "a timed-out echo must be forgotten"
                # room for a few hundred ms of replies at thousands a second (the kernel doubles it)
                assert prober._recv.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= RECV_BUFFER
            finally:
                prober.close()
            decap.kill()
            killed = time.monotonic()
            async with asyncio.timeout(3):
                await got.wait()
            return healthy_before, checker.view()[target.key], downs[0] - killed

    healthy_before, healthy_after, delay = run_in_netns(d, lambda: asyncio.run(scenario()))
    print(f"\nGUE decap gone -> callback: {delay:.3f} s")
    assert healthy_before and not healthy_after
    assert delay <= 3 * 0.3 + 0.25 + 0.3


def test_seq_is_encoded_in_the_udp_source_port() -> None:
    pkt = probe_packet(DIRECTOR, PROXY, PROXY, PORT, 1, 0xFFFF)
    (sport,) = struct.unpack("!H", pkt[20:22])
    assert sport == 0xFFFF and pkt[9] == socket.IPPROTO_UDP
