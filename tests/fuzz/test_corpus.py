"""The corpus side of the fuzzer, without root: reproducible frames, pcap round trip, and
the director model checked against director_ref's flow-level API on hand-made frames."""

from __future__ import annotations

import ipaddress
import struct

from tests.dataplane.conftest import GW_MAC, SOURCE_IP, SRC_MAC, WEB, standard_tables
from tests.dataplane.director_ref import Director, Flow, Table
from tests.fuzz import packets as P
from tests.fuzz.__main__ import _generator, main
from tests.fuzz.director_model import DirectorModel
from tests.fuzz.model import XDP_DROP, XDP_PASS, XDP_TX


def test_packets_regenerate_from_seed_and_index_alone() -> None:
    for name in ("director", "proxy"):
        gen = _generator(name)
        run = [gen.make(7, i) for i in range(300)]  # type: ignore[attr-defined]
        assert [gen.make(7, i) for i in (299, 3, 150)] == [run[299], run[3], run[150]]  # type: ignore[attr-defined]
        assert len({f for _, f, _ in run}) > 290  # distinct frames, not one repeated
        assert gen.make(8, 3) != run[3]  # type: ignore[attr-defined]


def test_dump_writes_a_pcap_of_the_corpus(tmp_path) -> None:
    out = tmp_path / "c.pcap"
    assert main(["dump", "director", "--seed", "3", "--count", "50", "--out", str(out)]) == 0
    gen = _generator("director")
    assert P.read_pcap(out.read_bytes()) == [gen.make(3, i)[1] for i in range(50)]  # type: ignore[attr-defined]


def test_director_model_matches_the_flow_level_reference() -> None:
    tables = standard_tables()
    ref = Director(SOURCE_IP, SRC_MAC, GW_MAC, ("src_addr", "dst_addr"))
    model = DirectorModel(ref, tables)
    web = Table(WEB, tables[0][1])
    client, vip = "198.51.100.7", "203.0.113.10"
    c, v = ipaddress.ip_address(client).packed, ipaddress.ip_address(vip).packed
    eth = P.eth(bytes(6), bytes(6), P.ETH_P_IP)
    frame = eth + P.ipv4(c, v, 6, P.tcp(40000, 443, P.TCP_SYN))
    out = model.decide(frame)
    assert (out.verdict, out.reason, out.group) == (XDP_TX, "forwarded", "web")
    assert out.frame == ref.encap(frame, web, Flow(client, vip, 40000, 443), 40000)
    # An ICMP error quoting the VIP's packet to the client lands where the flow lands.
    quoted = P.ipv4(v, c, 6, P.tcp(443, 40000, P.TCP_ACK)[:8])
    err = eth + P.ipv4(bytes([198, 51, 100, 1]), v, 1, P.icmp(3, 4, b"\0\0\x05\xdc", quoted))
    out = model.decide(err)
    assert out.frame == ref.encap(err, web, Flow(client, vip, 40000, 443), 40000)
    # Truncated headers to a VIP are dropped; to anything else passed.
    assert model.decide(frame[:30] + frame[30:40]).verdict == XDP_DROP
    other = eth + P.ipv4(c, bytes([203, 0, 113, 200]), 6, P.tcp(1, 2, 0))
    assert model.decide(other[:40]).verdict == XDP_PASS
    # A VLAN tag is kept on the way out.
    tagged = P.eth(bytes(6), bytes(6), P.ETH_P_IP, ((P.ETH_P_8021Q, 7),)) + frame[14:]
    assert model.decide(tagged).frame[12:16] == struct.pack("!HH", P.ETH_P_8021Q, 7)
