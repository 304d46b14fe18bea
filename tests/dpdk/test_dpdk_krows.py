"""K-candidate rows and hash-field migration: the DPDK director against the XDP director.

The agent hands the DPDK process the send-order rows the XDP director's maps hold
(forwarding_rows.bin, glb_agent.dataplane.dpdk.render_files). For K-wide rows of 1..K used
entries (the fuzzer's ``wide_rows``, K = 2, 3, 4 and 8), with and without
``alt_hash_fields`` (the fuzzer's ``director-k`` target: hash [src_addr, dst_addr], old
fields [src_addr]) and with a table without backends, the XDP director built for the same
K runs every frame under BPF_PROG_TEST_RUN and the DPDK director runs them through
net_pcap: forwarded and passed frames must be byte-identical, in order, and the per-table,
per-reason counters equal.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from glb_agent.dataplane.bpfcore import testrun
from glb_agent.dataplane.bpfcore.testrun import XDP_PASS, XDP_TX
from tests.dataplane.conftest import DNS, EMPTY, GW_MAC, RANGE, SOURCE_IP, SRC_MAC, WEB, _backends
from tests.dpdk import corpus
from tests.dpdk.harness import dpdk_unavailable, run_pcap, write_krows
from tests.fuzz.env import wide_rows
from tests.support.netns import bpf_unavailable

pytestmark = [pytest.mark.bpf, pytest.mark.dpdk]

# web gets nine proxies so that K = 8 rows are full send orders of distinct proxies.
WIDE_WEB = dataclasses.replace(WEB, backends=_backends(*(f"198.18.0.{i}" for i in range(21, 30))))

# name -> (hash fields, alt_hash_fields, K)
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], int]] = {
    "k2": (("src_addr",), (), 2),
    "k3-ports": (("src_addr", "src_port"), (), 3),
    "k4": (("src_addr", "dst_addr"), (), 4),
    "k8-all": (("src_addr", "dst_addr", "src_port", "dst_port"), (), 8),
    "k4-alt": (("src_addr", "dst_addr"), ("src_addr",), 4),  # tests/fuzz director-k
    "k2-alt-ports": (("src_addr", "src_port"), ("src_addr",), 2),
}


def tables_for(width: int) -> list:
    specs = [WIDE_WEB, DNS, RANGE]
    return [(s, wide_rows(len(s.backends), i + 7, width)) for i, s in enumerate(specs)] + [(EMPTY, None)]


class Xdp:
    """The XDP director built for K and the migration, loaded (not attached) with the tables."""

    def __init__(self, fields: tuple[str, ...], alt: tuple[str, ...], width: int, tables: list) -> None:
        from glb_agent.dataplane.director import DirectorProgram, DirectorState
        from glb_agent.dataplane.director_maps import BuildOptions, compile_tables

        self.opts = BuildOptions(ipaddress.IPv4Address(SOURCE_IP), SRC_MAC, GW_MAC, fields, alt, mtu=1500,
                                 row_width=width)
        self.program = DirectorProgram(self.opts)
        self.state = DirectorState(self.program.map_fds, self.opts.max_tables, self.opts.max_binds)
        self.state.apply(compile_tables(tables, self.opts))

    def expected(self, frames: list[bytes]) -> tuple[list[bytes], list[bytes], dict]:
        before = self.state.counters()
        tx, passed = [], []
        for f in frames:
            res = testrun.run(self.program.prog_fd, f)
            if res.action == XDP_TX:
                tx.append(res.packet)
            elif res.action == XDP_PASS:
                passed.append(f)
        after = self.state.counters()
        delta = {name: {k: v - before[name][k] for k, v in cells.items()} for name, cells in after.items()}
        return tx, passed, delta


@pytest.fixture(scope="module", params=list(VARIANTS), ids=list(VARIANTS))
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    why = dpdk_unavailable() or bpf_unavailable()
    if why:
        pytest.skip(why)
    fields, alt, width = VARIANTS[request.param]
    tables = tables_for(width)
    work = tmp_path_factory.mktemp(f"dpdk-{request.param}")
    conf, table = write_krows(work, tables, fields, GW_MAC, SOURCE_IP, row_width=width, alt_hash_fields=alt)
    yield Xdp(fields, alt, width, tables), work, conf, table, tables, request.param


def _first_difference(a: list[bytes], b: list[bytes]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"frame {i}: xdp {x.hex()}\n          dpdk {y.hex()}"
    return f"lengths differ: xdp {len(a)} frames, dpdk {len(b)}"


def _hop_counts(frames: list[bytes]) -> set[int]:
    """GUE hop counts of forwarded frames (byte 7 of the GUE header, after outer IPv4 and UDP)."""
    return {f[14 + 20 + 8 + 7] if f[12:14] == b"\x08\x00" else f[18 + 20 + 8 + 7] for f in frames}


def _compare(xdp: Xdp, work: Path, conf: Path, table: Path, tables: list, frames: list[bytes]) -> list[bytes]:
    want_tx, want_pass, want_counts = xdp.expected(frames)
    got = run_pcap(work, frames, conf, table, names=[s.name for s, _ in tables], src_mac=SRC_MAC, mtu=1500,
                   timeout=300)
    assert got.returncode == 0, got.stderr
    assert got.forwarded == want_tx, _first_difference(want_tx, got.forwarded)
    assert got.passed == want_pass, _first_difference(want_pass, got.passed)
    for name, cells in want_counts.items():
        assert got.stats["counters"][name] == cells, name
    return want_tx


def test_corpus_same_bytes_and_counters_as_xdp(pair: tuple) -> None:
    xdp, work, conf, table, tables, variant = pair
    frames = corpus.corpus()
    # The empty table's VIP: dropped and counted by both, as no_backend.
    frames += [bytes(corpus._eth() / corpus.IP(src=f"198.51.100.{i}", dst="203.0.113.99")
                     / corpus.TCP(sport=1000 + i, dport=80)) for i in range(1, 6)]
    tx = _compare(xdp, work, conf, table, tables, frames)
    assert len(tx) > 100
    _fields, alt, width = VARIANTS[variant]
    hops = _hop_counts(tx)
    # Rows of 1..K entries (and while migrating the old row's 1..K after them): the frames
    # carry hop lists of several lengths, longer than upstream's one hop, within the bound.
    assert len(hops) > 1 and max(hops) <= width - 1 + (width if alt else 0), hops
    assert max(hops) > 1 or width == 2, hops
    delta = xdp.state.counters()["empty"]
    assert delta["drop_no_backend_packets"] >= 5


def test_fuzzer_frames_same_bytes_and_counters_as_xdp(pair: tuple) -> None:
    """5,000 frames of the differential fuzzer's director generator for the same binds."""
    from tests.fuzz.gen_director import DirectorGen

    xdp, work, conf, table, tables, _variant = pair
    gen = DirectorGen([spec for spec, _ in tables])
    frames = [f for f in (gen.make(1717, i)[1] for i in range(5000)) if 14 <= len(f) <= corpus.MAX_FRAME]
    tx = _compare(xdp, work, conf, table, tables, frames)
    assert len(tx) > 1000


# --- bad K-candidate files: exit 2, naming the file and the byte -----------------------------

ROW0 = 24 + 4 + 256 * 28 + 16  # table 0, row 0: header, num_binds, bind slots, hash key


@pytest.mark.parametrize(("alt", "width", "damage", "message"), [
    ((), 4, lambda b: b[:ROW0] + bytes(4) + b[ROW0 + 4:], f"byte {ROW0 + 4}: table 0 row 0: entry 1 follows an unused"),
    ((), 4, lambda b: b[:-4], "but a header for 4 tables of 256 binds and rows 4 wide"),
    ((), 4, lambda b: b[:16] + (9).to_bytes(4, "little") + b[20:], "byte 16: row_width 9, the director holds 1-8"),
    (("src_addr",), 4, lambda b: b[:16] + (8).to_bytes(4, "little") + b[20:],
     "row_width 8, the director holds 1-4 while alt_hash_fields is set"),
])
def test_bad_krows_file_exits_2(tmp_path: Path, alt: tuple[str, ...], width: int, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    from tests.dpdk.test_dpdk_process import _start

    if dpdk_unavailable():
        pytest.skip(dpdk_unavailable())
    conf, table = write_krows(tmp_path, tables_for(width), ("src_addr", "dst_addr"), GW_MAC, SOURCE_IP,
                              row_width=width, alt_hash_fields=alt)
    table.write_bytes(damage(table.read_bytes()))
    res = _start(tmp_path, conf, table)
    assert res.returncode == 2 and str(table) in res.stderr and message in res.stderr, res.stderr


def test_alt_equal_to_hash_fields_exits_2(tmp_path: Path) -> None:
    from tests.dpdk.test_dpdk_process import _start

    if dpdk_unavailable():
        pytest.skip(dpdk_unavailable())
    conf, table = write_krows(tmp_path, tables_for(4), ("src_addr",), GW_MAC, SOURCE_IP, row_width=4,
                              alt_hash_fields=("dst_addr",))
    conf.write_text(conf.read_text().replace('"dst_addr": true', '"dst_addr": false', 1)
                    .replace('"src_addr": false', '"src_addr": true'))
    res = _start(tmp_path, conf, table)
    assert res.returncode == 2 and "alt_hash_fields equals hash_fields" in res.stderr, res.stderr
