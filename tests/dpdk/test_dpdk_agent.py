"""glb_agent.dataplane.dpdk.DpdkDirector: the agent's handle on the DPDK process.

The real binary on net_pcap ports: the first table set starts it, later sets reload it
(SIGHUP, RCU swap) and the generation advances, an identical set changes nothing, a set the
file format cannot carry is refused before anything is written, a second handle adopts the
running process (agent restart), readiness follows the process, stop ends it. A table
without backends is carried (its packets are dropped and counted, as XDP); hash-field
migration is handed over in director.conf.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from glb_agent.dataplane.director import DirectorSettings
from glb_agent.dataplane.dpdk import DpdkDirector, DpdkOptions
from glb_agent.errors import InputError
from tests.dataplane.conftest import DNS, EMPTY, GW_MAC, SOURCE_IP, SRC_MAC, WEB, make_rows
from tests.dpdk.harness import BINARY, dpdk_unavailable, eal_args, read_pcap, write_pcap

pytestmark = pytest.mark.dpdk


@pytest.fixture
def director(tmp_path: Path) -> Iterator[DpdkDirector]:
    why = dpdk_unavailable()
    if why:
        pytest.skip(why)
    pcap = tmp_path / "in.pcap"
    write_pcap(pcap, [bytes(Ether(dst=SRC_MAC) / IP(src=f"198.51.100.{i}", dst="203.0.113.10") / TCP(dport=80))
                      for i in range(1, 11)])
    settings = DirectorSettings("d0", ipaddress.IPv4Address(SOURCE_IP), GW_MAC, ("src_addr",), mtu=1500)
    options = DpdkOptions(eal_args(f"net_pcap0,rx_pcap={pcap},tx_pcap={tmp_path / 'out.pcap'}"),
                          tmp_path / "state", binary=BINARY, stats_interval_ms=100)
    d = DpdkDirector(settings, options)
    yield d
    d.stop()


def test_lifecycle(director: DpdkDirector, tmp_path: Path) -> None:
    assert director.start() == "pending"
    assert director.ready()[0] is False
    assert director.update_tables([(WEB, make_rows(4, 1)), (DNS, make_rows(2, 2))]) == 1
    ok, why = director.ready()
    assert ok, why
    c = director.counters()
    assert set(c) == {"web", "dns", "_unmatched"}
    assert c["web"]["forwarded_packets"] == 10
    assert len(read_pcap(tmp_path / "out.pcap")) == 10

    assert director.update_tables([(WEB, make_rows(4, 1)), (DNS, make_rows(2, 2))]) == 1, "nothing changed"
    assert director.update_tables([(WEB, make_rows(4, 5)), (DNS, make_rows(2, 2))]) == 2
    assert director.update_tables([(WEB, make_rows(4, 5)), (EMPTY, None)]) == 3
    assert set(director.counters()) == {"web", "empty", "_unmatched"}
    with pytest.raises(InputError, match="rows must be an integer array"):
        director.update_tables([(WEB, make_rows(4, 5)[:10])])
    assert director.stats()["generation"] == 3
    # The services swap slots: each keeps its own counts (retired table sets fold by name).
    assert director.update_tables([(DNS, make_rows(2, 2)), (WEB, make_rows(4, 5))]) == 4
    c = director.counters()
    assert c["web"]["forwarded_packets"] == 10 and c["dns"]["forwarded_packets"] == 0

    again = DpdkDirector(director.settings, director.options)  # a restarted agent
    assert again.start() == "adopted"
    assert again.counters()["web"]["forwarded_packets"] == 10
    assert again.update_tables([(DNS, make_rows(2, 2))]) == 5
    assert set(again.counters()) == {"dns", "_unmatched"}

    assert director.stop() is True
    assert director.ready()[0] is False
    assert again.start() == "pending"


def test_alt_hash_fields_reach_the_process(director: DpdkDirector) -> None:
    """A migrating director.conf; K = 8 with migration cannot fit a hop list (refused first)."""
    migrating = DpdkDirector(replace(director.settings, hash_fields=("src_addr", "src_port"),
                                     alt_hash_fields=("src_addr",)), director.options)
    assert migrating.update_tables([(WEB, make_rows(4, 1))]) == 1
    assert json.loads(migrating.conf.read_text())["alt_hash_fields"]["src_addr"] is True
    assert migrating.counters()["web"]["forwarded_packets"] == 10
    wide = DpdkDirector(replace(migrating.settings, row_width=8), director.options)
    with pytest.raises(InputError, match="row_width 8 with alt_hash_fields makes 15 hops"):
        wide.update_tables([(WEB, make_rows(4, 1))])
    assert migrating.stats()["generation"] == 1
