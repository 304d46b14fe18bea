"""The DPDK director as a process: start-up errors, reloads under traffic, the stats file.

Traffic here comes from net_pcap replaying a capture forever (infinite_rx) and leaves through
net_null, so the director runs flat out while the test swaps its tables; the counters then
account for every received packet.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from glb_agent.table.spec import Bind
from tests.dataplane.conftest import DNS, GW_MAC, SOURCE_IP, SRC_MAC, WEB, make_rows
from tests.dpdk.harness import (
    BINARY,
    EXIT_USAGE,
    Running,
    copy_atomic,
    director_args,
    dpdk_unavailable,
    eal_args,
    write_pcap,
    write_tables,
)

pytestmark = pytest.mark.dpdk

TABLES = [(WEB, make_rows(4, 1)), (DNS, make_rows(2, 2))]


@pytest.fixture(autouse=True)
def _need_dpdk() -> None:
    why = dpdk_unavailable()
    if why:
        pytest.skip(why)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return write_tables(tmp_path, TABLES, ("src_addr",), GW_MAC, SOURCE_IP)


def _start(tmp_path: Path, conf: Path, table: Path, *, eal: list[str] | None = None, extra: list[str] = ()
           ) -> subprocess.CompletedProcess:
    pcap = tmp_path / "one.pcap"
    write_pcap(pcap, [bytes(Ether() / IP(dst="203.0.113.10") / TCP(dport=80))])
    eal = eal if eal is not None else eal_args(f"net_pcap0,rx_pcap={pcap}", "net_null0")
    return subprocess.run([str(BINARY), *eal, "--", *director_args(conf, table, src_mac=SRC_MAC),
                           "--idle-exit-ms", "50", *extra], capture_output=True, text=True, timeout=60)


# --- start-up errors: exit 2 and say what is wrong ----------------------------------------------

def test_starts_and_exits_cleanly(tmp_path: Path, files: tuple[Path, Path]) -> None:
    res = _start(tmp_path, *files)
    assert res.returncode == 0, res.stderr
    assert "generation 1 (2 tables)" in res.stderr


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b"XXXX" + b[4:], "byte 0: magic"),
    (lambda b: b[:100], "shorter than the header for"),
    (lambda b: b[:-8], "but a header for 2 tables"),
    (lambda b: b[:-8] + (99).to_bytes(4, "little") + b[-4:], "row 65535 points at backend 99, but the table has 2"),
])
def test_bad_table_file_exits_2(tmp_path: Path, files: tuple[Path, Path], damage, message: str) -> None:  # type: ignore[no-untyped-def]
    conf, table = files
    table.write_bytes(damage(table.read_bytes()))
    res = _start(tmp_path, conf, table)
    assert res.returncode == EXIT_USAGE
    assert str(table) in res.stderr and (message in res.stderr or "file is" in res.stderr), res.stderr


@pytest.mark.parametrize(("text", "message"), [
    ("{", "director.conf:"),
    ('{"outbound_gateway_mac": "01:00:5e:00:00:01", "outbound_src_ip": "198.18.0.11"}', "outbound_gateway_mac"),
    ('{"outbound_gateway_mac": "02:00:00:00:00:01", "outbound_src_ip": "2001:db8::1"}', "outbound_src_ip"),
    ('{"outbound_gateway_mac": "02:00:00:00:00:01", "outbound_src_ip": "198.18.0.11", "hash_fields": {"src_ip": true}}',
     "hash_fields.src_ip"),
    ('{"outbound_gateway_mac": "02:00:00:00:00:01", "outbound_src_ip": "198.18.0.11", "table_names": ["web"]}',
     "table names: give 2"),
    ('{"outbound_gateway_mac": "02:00:00:00:00:01", "outbound_src_ip": "198.18.0.11", "table_names": ["a,b", "c"]}',
     "table_names[0]"),
])
def test_bad_director_conf_exits_2(tmp_path: Path, files: tuple[Path, Path], text: str, message: str) -> None:
    conf, table = files
    conf.write_text(text)
    res = _start(tmp_path, conf, table)
    assert res.returncode == EXIT_USAGE and message in res.stderr, res.stderr


def test_missing_file_exits_2(tmp_path: Path, files: tuple[Path, Path]) -> None:
    conf, _ = files
    res = _start(tmp_path, conf, tmp_path / "nope.bin")
    assert res.returncode == EXIT_USAGE and "nope.bin: cannot read" in res.stderr


def test_missing_port_exits_2(tmp_path: Path, files: tuple[Path, Path]) -> None:
    res = _start(tmp_path, *files, extra=["--port", "5"])
    assert res.returncode == EXIT_USAGE and "port 5 does not exist" in res.stderr


def test_bad_eal_arguments_exit_2(tmp_path: Path, files: tuple[Path, Path]) -> None:
    res = _start(tmp_path, *files, eal=[*eal_args(), "--vdev", "net_nosuchpmd0"])
    assert res.returncode == EXIT_USAGE and "EAL initialisation failed" in res.stderr


def test_bad_option_exits_2(tmp_path: Path, files: tuple[Path, Path]) -> None:
    res = _start(tmp_path, *files, extra=["--mtu", "20"])
    assert res.returncode == EXIT_USAGE and "--mtu 20" in res.stderr


# --- reloads --------------------------------------------------------------------------------------

def test_reload_under_traffic_loses_nothing_and_keeps_the_last_good_table(tmp_path: Path) -> None:
    """Tables A (web binds port 80) and B (web moved to port 81) alternate under full load on a
    worker lcore, with a bad file in between; every received packet is accounted for by a
    verdict of the table set it met, none is lost, and the bad file changes nothing."""
    web_b = replace(WEB, binds=tuple(Bind(b.network, b.proto, 81, 81) if b.port_start == 80 else b
                                     for b in WEB.binds))
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    dir_a.mkdir()
    dir_b.mkdir()
    conf, table_a = write_tables(dir_a, TABLES, ("src_addr",), GW_MAC, SOURCE_IP)
    _, table_b = write_tables(dir_b, [(web_b, TABLES[0][1]), TABLES[1]], ("src_addr",), GW_MAC, SOURCE_IP)
    live = tmp_path / "forwarding_table.bin"
    copy_atomic(table_a, live)
    pcap = tmp_path / "flows.pcap"
    write_pcap(pcap, [bytes(Ether() / IP(src=f"198.51.100.{i}", dst="203.0.113.10") / TCP(sport=1000 + i, dport=80))
                      for i in range(1, 65)])
    stats = tmp_path / "stats.json"
    cmd = [str(BINARY), *eal_args(f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "net_null0", lcores="0,1"), "--",
           *director_args(conf, live, names=["web", "dns"], src_mac=SRC_MAC, stats=stats),
           "--stats-interval-ms", "50"]
    d = Running(cmd, stats)
    try:
        def fwd(st: dict) -> int:
            return st["counters"]["web"]["forwarded_packets"]

        def unmatched(st: dict) -> int:
            return st["counters"]["_unmatched"]["pass_not_vip_packets"]

        st = d.wait_stats(lambda s: fwd(s) > 10000)
        assert st["lcores"] == 1 and st["generation"] == 1
        generation = 1
        for i in range(6):
            copy_atomic(table_b if i % 2 == 0 else table_a, live)
            d.reload()
            generation += 1
            st = d.wait_stats(lambda s, g=generation: s["generation"] == g)
            before = (fwd(st), unmatched(st))
            # The new table set is the one packets meet now.
            if i % 2 == 0:
                st = d.wait_stats(lambda s, b=before: unmatched(s) > b[1] + 10000)
                assert fwd(st) == before[0]
            else:
                st = d.wait_stats(lambda s, b=before: fwd(s) > b[0] + 10000)
                assert unmatched(st) == before[1]

        live.write_bytes(b"GLBD garbage")
        d.reload()
        st = d.wait_stats(lambda s: s["reload_errors"] == 1)
        assert st["generation"] == generation and "forwarding_table.bin" in st["last_error"]
        before = fwd(st)
        st = d.wait_stats(lambda s: fwd(s) > before + 10000)  # still forwarding with table A
    finally:
        rc, err = d.stop()
    assert rc == 0, err
    st = d.stats()
    counted = sum(v for cells in st["counters"].values() for k, v in cells.items() if k.endswith("_packets"))
    assert st["ports"]["rx"] == counted, "every received packet has exactly one verdict"
    assert st["ports"]["tx"] == fwd(st) and st["ports"]["tx_failed"] == 0
    assert fwd(st) + unmatched(st) == st["ports"]["rx"], "no packet dropped across seven swaps"
    assert "reload failed, keeping generation 7" in err
