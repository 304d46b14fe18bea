"""Packets the fuzzer found, pinned as explicit tests of the real programs.

proxy: inner packets whose own length ends inside the header the decision reads (the TCP
header, the ICMP header, the quote of a PMTU error) while the rest of that header follows
in the GUE payload. The proxy used to decide on those trailing bytes (accepting an
"established" ACK or looking up a quoted connection that is not in the packet); it now
drops them as drop_inner, like any other truncated inner packet.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator

import pytest

from tests.fuzz import packets as P
from tests.fuzz.harness import Target, _delta
from tests.fuzz.model import XDP_DROP
from tests.support.netns import bpf_unavailable

pytestmark = [pytest.mark.bpf, pytest.mark.netns]


@pytest.fixture(scope="module")
def proxy() -> Iterator[Target]:
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    from tests.fuzz.env import proxy_target

    with proxy_target() as t:
        yield t


def _run(t: Target, frame: bytes) -> tuple[int, bytes, dict[str, int]]:
    before = t.runner.counters()
    with t.scope():
        verdict, out = t.runner.run(frame)
    return verdict, out, dict(+_delta(before, t.runner.counters()))


def _gue(t: Target, inner: bytes) -> bytes:
    w = t.gen.w  # type: ignore[attr-defined]
    return t.gen.frame(random.Random(1), inner, src=w.director, hops=(), next_hop=0)  # type: ignore[attr-defined]


def _established_ack(t: Target, fam: int) -> bytes:
    w = t.gen.w  # type: ignore[attr-defined]
    client, cport = (w.established4 if fam == 4 else w.established6)[0]
    seg = P.tcp(cport, w.port, P.TCP_ACK, seq=5, ack=7)
    return P.ipv4(client, w.vip4, 6, seg) if fam == 4 else P.ipv6(client, w.vip6, 6, seg)


@pytest.mark.parametrize("fam", [4, 6])
def test_tcp_header_cut_by_inner_length_is_dropped(proxy: Target, fam: int) -> None:
    inner = bytearray(_established_ack(proxy, fam))
    if fam == 4:
        inner[2:4] = (20 + 12).to_bytes(2, "big")  # TCP header 20 bytes, packet says 12
    else:
        inner[4:6] = (12).to_bytes(2, "big")
    frame = _gue(proxy, bytes(inner))
    verdict, out, moved = _run(proxy, frame)
    assert (verdict, out, moved) == (XDP_DROP, frame, {"rx_gue": 1, "drop_inner": 1})
    assert proxy.model.decide(frame).reason == "drop_inner"
    # The same packet with an honest length is an established connection's ACK.
    honest = _gue(proxy, _established_ack(proxy, fam))
    assert _run(proxy, honest)[2] == {"rx_gue": 1, "accept_established": 1}


@pytest.mark.parametrize("fam", [4, 6])
def test_pmtu_quote_cut_by_inner_length_is_dropped(proxy: Target, fam: int) -> None:
    w = proxy.gen.w  # type: ignore[attr-defined]
    client, cport = (w.established4 if fam == 4 else w.established6)[0]
    router = ipaddress.ip_address("198.51.100.200" if fam == 4 else "2001:db8:200::200").packed
    quote_l4 = P.tcp(w.port, cport, P.TCP_ACK)[:8]
    if fam == 4:
        quote = P.ipv4(w.vip4, client, 6, quote_l4)
        inner = bytearray(P.ipv4(router, w.vip4, 1, P.icmp(3, 4, b"\0\0\x05\xdc", quote)))
        inner[2:4] = (20 + 8 + 20 + 2).to_bytes(2, "big")  # the quoted ports lie beyond the packet
    else:
        quote = P.ipv6(w.vip6, client, 6, quote_l4)
        inner = bytearray(P.ipv6(router, w.vip6, 58, P.icmp(2, 0, b"\0\0\x05\xdc", quote)))
        inner[4:6] = (8 + 40 + 2).to_bytes(2, "big")
    frame = _gue(proxy, bytes(inner))
    verdict, out, moved = _run(proxy, frame)
    assert (verdict, out, moved) == (XDP_DROP, frame, {"rx_gue": 1, "drop_inner": 1})


def test_icmp_header_cut_by_inner_length_is_dropped(proxy: Target) -> None:
    w = proxy.gen.w  # type: ignore[attr-defined]
    inner = bytearray(P.ipv4(ipaddress.ip_address("198.51.100.9").packed, w.vip4, 1,
                             P.icmp(8, 0, b"\0\x01\0\x01", b"ping")))
    inner[2:4] = (20 + 4).to_bytes(2, "big")
    frame = _gue(proxy, bytes(inner))
    assert _run(proxy, frame) == (XDP_DROP, frame, {"rx_gue": 1, "drop_inner": 1})
