"""The DPDK director on a real interface: af_xdp on a veth, in a namespace, next to the host.

Two namespaces joined by a veth: the client (also the director's gateway) and the director,
whose interface d0 keeps its own address. The director runs on d0 through the net_af_xdp PMD
with the steering program (dpdk/xdp/steer.c): VIP traffic reaches the DPDK director, the
rest stays with the kernel, so ping and TCP to the director's own address keep working.
Frames are sent and captured with AF_PACKET sockets in the client namespace; every
encapsulated frame must be byte-identical to what the XDP director makes of the same frame.

The director runs under ``nsenter --net=/run/netns/NS``: ``ip netns exec`` remounts /sys and
hides /sys/fs/bpf from libxdp (../shared/PLATFORM.md).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from glb_agent.lab import netns
from tests.dataplane.conftest import DNS, SOURCE_IP, WEB, make_rows
from tests.dpdk.harness import BINARY, Running, copy_atomic, director_args, eal_args, write_tables
from tests.support.netns import Lab

pytestmark = [pytest.mark.dpdk, pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

STEER_OBJ = BINARY.parent / "glb-steer.bpf.o"
DIRECTOR_IP, CLIENT_IP = SOURCE_IP, "198.18.0.1"
VIP = "203.0.113.10"
ETH_P_ALL = 0x0003
GUE_PORT = 19523
AF_XDP = f"net_af_xdp0,iface=d0,start_queue=0,queue_count=1,xdp_prog={STEER_OBJ}"


def _unavailable() -> str | None:
    from tests.dpdk.harness import af_xdp_unavailable

    why = af_xdp_unavailable()
    if why:
        return why
    if not STEER_OBJ.exists():
        return f"{STEER_OBJ} not built (make dpdk)"
    return None


class Site:
    """The two namespaces, the director's files and a running director."""

    def __init__(self, lab: Lab, work: Path, vdev: str = AF_XDP, lcores: str = "0") -> None:
        self.client = lab.ns("dpc")
        self.dir_ns = lab.ns("dpd")
        lab.link(self.client, "c0", self.dir_ns, "d0", [f"{CLIENT_IP}/24"], [f"{DIRECTOR_IP}/24"])
        self.gw_mac = lab.mac(self.client, "c0")
        self.dir_mac = lab.mac(self.dir_ns, "d0")
        self.work = work
        self.tables_a = [(WEB, make_rows(4, 1)), (DNS, make_rows(2, 2))]
        self.tables_b = [(WEB, make_rows(4, 7)), (DNS, make_rows(2, 8))]  # other rows: other primaries
        for name, tables in (("a", self.tables_a), ("b", self.tables_b)):
            (work / name).mkdir()
            self.conf, _ = write_tables(work / name, tables, ("src_addr",), self.gw_mac, DIRECTOR_IP)
        self.table = work / "forwarding_table.bin"
        copy_atomic(work / "a" / "forwarding_table.bin", self.table)
        self.stats = work / "stats.json"
        cmd = [str(BINARY),
               *eal_args(vdev, lcores=lcores, mem_mb=256), "--",
               *director_args(self.conf, self.table, names=["web", "dns"], stats=self.stats),
               *(["--xdp-steer", "d0"] if vdev == AF_XDP else []), "--stats-interval-ms", "100"]
        self.director = Running(cmd, self.stats, prefix=["nsenter", f"--net=/run/netns/{self.dir_ns}"])
        self.director.wait_stats(lambda s: s.get("generation") == 1)

    def xdp(self, tables: str = "a"):  # type: ignore[no-untyped-def]
        """The XDP director with the same settings and tables (an independent forwarding oracle)."""
        from tests.dpdk.test_dpdk_packets import Xdp

        if not hasattr(self, "_xdp"):
            self._xdp = Xdp(("src_addr",), self.tables_a, DIRECTOR_IP, self.dir_mac, self.gw_mac)
            self._xdp_tables = "a"
        if self._xdp_tables != tables:
            self._xdp.load(self.tables_a if tables == "a" else self.tables_b)
            self._xdp_tables = tables
        return self._xdp

    def swap(self, name: str) -> None:
        copy_atomic(self.work / name / "forwarding_table.bin", self.table)
        self.director.reload()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    why = _unavailable()
    if why:
        pytest.skip(why)
    with Lab() as lab:
        s = Site(lab, tmp_path_factory.mktemp("dpdk-netns"))
        try:
            yield s
        finally:
            rc, err = s.director.stop()
            assert rc == 0, err


def _frame(site: Site, i: int) -> bytes:
    """A TCP segment to the VIP from client i, numbered in its payload."""
    client = str(ipaddress.IPv4Address("198.51.100.0") + 1 + i % 250)
    return bytes(Ether(src=site.gw_mac, dst=site.dir_mac) / IP(src=client, dst=VIP)
                 / TCP(sport=1024 + i % 60000, dport=80, flags="PA") / Raw(i.to_bytes(4, "big") * 4))


class Capture:
    """AF_PACKET capture of GUE frames arriving on the client's c0."""

    def __init__(self, ns: str) -> None:
        with netns.inside(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
            self.sock.bind(("c0", 0))
            self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            self.tx.bind(("c0", 0))
        self.sock.settimeout(0.2)
        self.frames: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            if len(data) > 38 and data[23] == 17 and int.from_bytes(data[36:38], "big") == GUE_PORT:
                self.frames.append(data)

    def wait(self, count: int, timeout: float = 20) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # and nothing more arrives
        return list(self.frames)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        self.tx.close()


def test_vip_traffic_is_forwarded_byte_for_byte_like_xdp(site: Site) -> None:
    cap = Capture(site.client)
    try:
        frames = [_frame(site, i) for i in range(200)]
        for f in frames:
            cap.tx.send(f)
        got = cap.wait(len(frames))
    finally:
        cap.close()
    want = [site.xdp().run(f).packet for f in frames]
    assert len(got) == len(frames)
    assert got == want


def test_host_traffic_stays_with_the_kernel(site: Site) -> None:
    """Ping and TCP to the director's own address are answered by its kernel while the DPDK
    director owns the VIP traffic on the same interface."""
    netns.run("ping", "-c", "3", "-i", "0.2", "-W", "2", DIRECTOR_IP, ns=site.client)
    with netns.inside(site.dir_ns):
        listener = socket.create_server((DIRECTOR_IP, 8080))
    try:
        with netns.inside(site.client):
            conn = socket.create_connection((DIRECTOR_IP, 8080), timeout=5)
        peer, _ = listener.accept()
        conn.sendall(b"hello")
        assert peer.recv(5) == b"hello"
        conn.close()
        peer.close()
    finally:
        listener.close()
    st = site.director.wait_stats(lambda s: True)
    assert st["counters"]["_unmatched"]["pass_not_vip_packets"] == 0, "host traffic never reached DPDK"


def test_table_swaps_under_continuous_traffic_lose_no_packet(site: Site) -> None:
    """4,000 frames at a steady rate while the tables alternate A/B six times: every frame
    comes back encapsulated, and frames after each swap use the new table's rows."""
    cap = Capture(site.client)
    count, swaps = 4000, 6
    stop_at = {count * (k + 1) // (swaps + 1): "b" if k % 2 == 0 else "a" for k in range(swaps)}
    before = site.director.wait_stats(lambda s: True)
    try:
        for i in range(count):
            cap.tx.send(_frame(site, i))
            if i in stop_at:
                site.swap(stop_at[i])
            if i % 50 == 0:
                time.sleep(0.01)  # ~5,000 frames/s
        got = cap.wait(count, timeout=30)
    finally:
        cap.close()
    st = site.director.wait_stats(lambda s: s["generation"] == before["generation"] + swaps)
    assert len(got) == count, f"{count - len(got)} frames lost across {swaps} swaps"
    seen = sorted(int.from_bytes(f[-16:-12], "big") for f in got)
    assert seen == list(range(count))
    assert st["ports"]["tx_failed"] == 0 and st["reload_errors"] == before["reload_errors"]
    # Every frame is exactly what the XDP director makes of it with table A or with table B,
    # and both tables were used.
    frames = {int.from_bytes(f[-16:-12], "big"): f for f in got}
    by_a = {i: site.xdp("a").run(_frame(site, i)).packet for i in range(count)}
    by_b = {i: site.xdp("b").run(_frame(site, i)).packet for i in range(count)}
    used = {"a" if frames[i] == by_a[i] else "b" if frames[i] == by_b[i] else "neither" for i in range(count)}
    assert used == {"a", "b"}


def test_two_lcores_on_two_queues(tmp_path: Path) -> None:
    """One RX/TX queue pair per forwarding lcore, flows spread by hash as RSS spreads them on a
    NIC. A veth offers af_xdp one queue only (it reports no combined channels, which the PMD
    requires), so this runs on net_af_packet with two queue pairs: PACKET_FANOUT by flow hash.
    Flows reach both lcores and every frame comes back exactly as the XDP director makes it."""
    why = _unavailable()
    if why:
        pytest.skip(why)
    with Lab() as lab:
        # Main lcore (chores only) and two forwarding workers on this host's two CPUs.
        s = Site(lab, tmp_path, vdev="net_af_packet0,iface=d0,qpairs=2", lcores="0@0,1@0,2@1")
        try:
            assert s.director.wait_stats(lambda st: True)["lcores"] == 2
            cap = Capture(s.client)
            try:
                frames = [_frame(s, i) for i in range(1000)]
                for i, f in enumerate(frames):
                    cap.tx.send(f)
                    if i % 50 == 0:
                        time.sleep(0.01)
                got = cap.wait(len(frames), timeout=30)
            finally:
                cap.close()
            st = s.director.wait_stats(lambda st: st["ports"]["rx"] >= len(frames))
        finally:
            rc, err = s.director.stop()
        assert rc == 0, err
        per_lcore = st["ports"]["lcore_rx"]
        assert len(per_lcore) == 2 and min(per_lcore) > len(frames) // 10, f"flows not spread: {per_lcore}"
        want = sorted(s.xdp().run(f).packet for f in frames)
        assert len(got) == len(frames) and sorted(got) == want
