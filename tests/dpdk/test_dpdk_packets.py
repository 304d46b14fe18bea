"""The DPDK director against the XDP director, packet by packet and counter by counter.

Same tables (tests/dataplane/conftest.py's web, dns and range, written as the agent writes
upstream's director.conf + forwarding_table.bin for the DPDK director, loaded into the XDP
director's maps by the agent's own code), same frames (tests/dpdk/corpus.py). The XDP
director runs each frame under BPF_PROG_TEST_RUN; the DPDK director runs them all through
net_pcap. Every forwarded frame must be byte-identical and in the same order, every passed
frame too, and the per-table, per-reason counters equal.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from glb_agent.dataplane.bpfcore import testrun
from glb_agent.dataplane.bpfcore.testrun import XDP_PASS, XDP_TX
from tests.dataplane.conftest import DNS, GW_MAC, RANGE, SOURCE_IP, SRC_MAC, WEB, make_rows
from tests.dpdk import corpus
from tests.dpdk.harness import dpdk_unavailable, run_pcap, write_tables
from tests.support.netns import bpf_unavailable

pytestmark = [pytest.mark.bpf, pytest.mark.dpdk]

TABLES = [(WEB, make_rows(4, 1)), (DNS, make_rows(2, 2)), (RANGE, make_rows(3, 3))]
NAMES = [s.name for s, _ in TABLES]
VARIANTS = {
    "src_addr": ("src_addr",),
    "all_fields": ("src_addr", "dst_addr", "src_port", "dst_port"),
    "dst_addr+dst_port": ("dst_addr", "dst_port"),
}


class Xdp:
    """The XDP director, compiled and loaded (not attached) with tables in its maps."""

    def __init__(self, hash_fields: tuple[str, ...], tables: list | None = None, source_ip: str = SOURCE_IP,
                 src_mac: str = SRC_MAC, gateway_mac: str = GW_MAC, mtu: int = 1500) -> None:
        from glb_agent.dataplane.director import DirectorProgram, DirectorState
        from glb_agent.dataplane.director_maps import BuildOptions

        self.opts = BuildOptions(ipaddress.IPv4Address(source_ip), src_mac, gateway_mac, hash_fields, mtu=mtu)
        self.program = DirectorProgram(self.opts)
        self.state = DirectorState(self.program.map_fds, self.opts.max_tables, self.opts.max_binds)
        self.load(TABLES if tables is None else tables)

    def load(self, tables: list) -> None:
        from glb_agent.dataplane.director_maps import compile_tables

        self.state.apply(compile_tables(tables, self.opts))

    def run(self, frame: bytes) -> testrun.RunResult:
        return testrun.run(self.program.prog_fd, frame)

    def counters(self) -> dict[str, dict[str, int]]:
        return self.state.counters()


@pytest.fixture(scope="module", params=list(VARIANTS), ids=list(VARIANTS))
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    why = dpdk_unavailable() or bpf_unavailable()
    if why:
        pytest.skip(why)
    fields = VARIANTS[request.param]
    work = tmp_path_factory.mktemp(f"dpdk-{request.param}")
    conf, table = write_tables(work, TABLES, fields, GW_MAC, SOURCE_IP)
    yield Xdp(fields), work, conf, table


def _expected(xdp: Xdp, frames: list[bytes]) -> tuple[list[bytes], list[bytes], list[int]]:
    tx, passed, actions = [], [], []
    for f in frames:
        res = xdp.run(f)
        actions.append(res.action)
        if res.action == XDP_TX:
            tx.append(res.packet)
        elif res.action == XDP_PASS:
            passed.append(f)
    return tx, passed, actions


def _first_difference(a: list[bytes], b: list[bytes]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"frame {i}: xdp {x.hex()}\n          dpdk {y.hex()}"
    return f"lengths differ: xdp {len(a)} frames, dpdk {len(b)}"


def test_corpus_same_bytes_and_counters_as_xdp(pair: tuple) -> None:
    xdp, work, conf, table = pair
    frames = corpus.corpus()
    before = xdp.counters()
    want_tx, want_pass, actions = _expected(xdp, frames)
    after = xdp.counters()
    got = run_pcap(work, frames, conf, table, names=NAMES, src_mac=SRC_MAC, mtu=1500)
    assert got.returncode == 0, got.stderr

    assert len(want_tx) > 100 and len(want_pass) > 10, "the corpus must exercise forward and pass"
    assert len(actions) - len(want_tx) - len(want_pass) > 50, "and drops"
    assert got.forwarded == want_tx, _first_difference(want_tx, got.forwarded)
    assert got.passed == want_pass, _first_difference(want_pass, got.passed)

    for name, cells in after.items():
        delta = {k: v - before[name][k] for k, v in cells.items()}
        assert got.stats["counters"][name] == delta, name
    assert got.stats["ports"]["rx"] == len(frames)
    assert got.stats["ports"]["tx"] == len(want_tx)
    assert got.stats["generation"] == 1 and got.stats["loaded"] is True


def test_mtu_follows_the_option(pair: tuple) -> None:
    """--mtu plays the role of the interface MTU the XDP build compiles in."""
    _, work, conf, table = pair
    frame = bytes(corpus._eth() / corpus.IP(src="198.51.100.1", dst=corpus.VIP)
                  / corpus.TCP(sport=1, dport=80) / corpus.Raw(b"m" * 1000))
    small = run_pcap(work, [frame], conf, table, names=NAMES, src_mac=SRC_MAC, mtu=1000)
    assert small.forwarded == [] and small.stats["counters"]["web"]["drop_too_big_packets"] == 1
    big = run_pcap(work, [frame], conf, table, names=NAMES, src_mac=SRC_MAC, mtu=1500)
    assert len(big.forwarded) == 1 and len(big.forwarded[0]) == len(frame) + 40


@pytest.mark.parametrize("mtu", [2000, 9000])
def test_jumbo_frames_same_bytes_as_xdp(pair: tuple, mtu: int) -> None:
    """Frames longer than a default mbuf's 2,048 bytes (net_pcap would chain them, and the core
    reads one segment) are forwarded whole at a jumbo MTU; at 2000 the frames the port can
    receive are forwarded, or refused as too big once encapsulated, exactly as by XDP. Up to
    ~3,000 bytes: BPF_PROG_TEST_RUN gives a program without frags one page."""
    xdp_base, work, conf, table = pair
    xdp = Xdp(xdp_base.opts.hash_fields, mtu=mtu)
    sizes = (1800, 1950, 1990) if mtu == 2000 else (1800, 2400, 2900)  # IPv4 packet lengths
    frames = [bytes(corpus._eth() / corpus.IP(src="198.51.100.7", dst=corpus.VIP)
                    / corpus.TCP(sport=4000 + n, dport=80) / corpus.Raw(b"j" * (n - 40))) for n in sizes]
    frames += [bytes(corpus._eth() / corpus.IPv6(src="2001:db8:aaaa::7", dst=corpus.VIP6)
                     / corpus.TCP(sport=5000 + n, dport=80) / corpus.Raw(b"k" * (n - 60))) for n in sizes]
    want_tx, want_pass, _ = _expected(xdp, frames)
    got = run_pcap(work, frames, conf, table, names=NAMES, src_mac=SRC_MAC, mtu=mtu)
    assert got.returncode == 0, got.stderr
    if mtu == 9000:
        assert len(want_tx) == len(frames)
    else:
        assert 0 < len(want_tx) < len(frames) and xdp.counters()["web"]["drop_too_big_packets"] > 0
    assert got.forwarded == want_tx, _first_difference(want_tx, got.forwarded)
    assert got.passed == want_pass
    assert got.stats["counters"]["web"] == xdp.counters()["web"]


def test_source_mac_defaults_to_the_port(pair: tuple, tmp_path: Path) -> None:
    """Without --src-mac the outer source MAC is the port's own."""
    _, work, conf, table = pair
    frame = bytes(corpus._eth() / corpus.IP(src="198.51.100.1", dst=corpus.VIP) / corpus.TCP(sport=1, dport=80))
    got = run_pcap(work, [frame], conf, table, names=NAMES)
    assert len(got.forwarded) == 1
    assert got.forwarded[0][:6] == bytes.fromhex(GW_MAC.replace(":", ""))
    assert got.forwarded[0][6:12] != bytes.fromhex(SRC_MAC.replace(":", "")), "net_pcap's MAC, not the option's"


def test_fuzzer_corpus_same_bytes_and_counters_as_xdp(pair: tuple) -> None:
    """20,000 frames of the differential fuzzer's director generator (tests/fuzz, structure-aware
    generation and mutation) for the same binds, fixed seed."""
    from tests.fuzz.gen_director import DirectorGen

    xdp, work, conf, table = pair
    gen = DirectorGen([spec for spec, _ in TABLES])
    frames = [f for f in (gen.make(1616, i)[1] for i in range(20000)) if 14 <= len(f) <= corpus.MAX_FRAME]
    before = xdp.counters()
    want_tx, want_pass, _actions = _expected(xdp, frames)
    after = xdp.counters()
    got = run_pcap(work, frames, conf, table, names=NAMES, src_mac=SRC_MAC, mtu=1500, timeout=300)
    assert got.returncode == 0, got.stderr
    assert len(frames) > 19000 and len(want_tx) > 5000 and len(want_pass) > 1000
    assert got.forwarded == want_tx, _first_difference(want_tx, got.forwarded)
    assert got.passed == want_pass, _first_difference(want_pass, got.passed)
    for name, cells in after.items():
        assert got.stats["counters"][name] == {k: v - before[name][k] for k, v in cells.items()}, name
