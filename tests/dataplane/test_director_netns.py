"""The director on a real veth in native XDP mode: client -> director -> proxy.

Each received GUE datagram is checked against the backend pair the reference predicts for
its flow (hash of client address and port with the table's key, rows the test built).
Also: table swaps under a continuous stream lose nothing and never mix tables, and a
restarted agent adopts the running program without detaching it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from glb_agent.table.siphash import siphash24_int
from glb_agent.table.spec import Backend, Bind, TableSpec
from tests.dataplane.conftest import make_rows
from tests.dataplane.netlab import (
    CLIENT_IP,
    CLIENT_IP6,
    DIRECTOR_IP,
    PROXY_IPS,
    PROXY_MAC,
    VIP,
    VIP6,
    DirectorLab,
    GueSink,
    inner_udp,
    netns,
    parse_gue,
)

pytestmark = [pytest.mark.bpf, pytest.mark.netns]

HASH_FIELDS = ("src_addr", "src_port")
SPEC_A = TableSpec("dns", bytes.fromhex("00112233445566778899aabbccddeeff"), bytes(16),
                   (Bind(ipaddress.ip_network(f"{VIP}/32"), "udp", 53, 53),
                    Bind(ipaddress.ip_network(f"{VIP6}/128"), "udp", 53, 53)),
                   tuple(Backend(ipaddress.ip_address(ip)) for ip in PROXY_IPS))
SPEC_B = replace(SPEC_A, hash_key=bytes.fromhex("ffeeddccbbaa99887766554433221100"))


def expected_hops(spec: TableSpec, rows: np.ndarray, client: str, sport: int) -> tuple[str, str]:
    msg = ipaddress.ip_address(client).packed + sport.to_bytes(2, "big")
    p, s = rows[siphash24_int(spec.hash_key, msg) & 0xFFFF]
    return str(spec.backends[int(p)].ip), str(spec.backends[int(s)].ip)


@contextlib.contextmanager
def streaming(net: DirectorLab, ports: range, sent: list[int]) -> Iterator[None]:
    """Send UDP to the VIP from ``ports`` every millisecond while the block runs; one
    entry in ``sent`` per datagram."""
    stop = threading.Event()

    def stream() -> None:
        socks = [net.client_socket(p) for p in ports]
        while not stop.is_set():
            for s in socks:
                s.sendto(b"stream", (VIP, 53))
                sent.append(1)
            time.sleep(0.001)
        for s in socks:
            s.close()

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(5)


@pytest.fixture
def settings(net: DirectorLab, request: pytest.FixtureRequest):
    from glb_agent.dataplane.director import DirectorSettings

    pin = Path(f"/sys/fs/bpf/glbt-{secrets.token_hex(3)}/eth0")
    mode = getattr(request, "param", "native")
    s = DirectorSettings("eth0", ipaddress.IPv4Address(DIRECTOR_IP), PROXY_MAC, HASH_FIELDS, pin_dir=pin,
                         xdp_mode=mode)
    yield s
    from glb_agent.dataplane.director import XdpDirector

    with netns(net.director):
        XdpDirector(s).stop()  # whatever a failing test left behind
    assert not pin.exists()


@pytest.fixture
def sink(net: DirectorLab) -> Iterator[GueSink]:
    s = GueSink(net.proxy).start()
    yield s
    s.close()


def send(net: DirectorLab, ports: range, count: int, family: int = socket.AF_INET, tag: bytes = b"") -> int:
    dst = VIP if family == socket.AF_INET else VIP6
    socks = [net.client_socket(p, family) for p in ports]
    try:
        for i in range(count):
            for s in socks:
                s.sendto(tag + f"{s.getsockname()[1]}:{i}".encode(), (dst, 53))
    finally:
        for s in socks:
            s.close()
    return count * len(socks)


@pytest.mark.parametrize("settings", ["native", "generic"], indirect=True)
def test_real_traffic_is_encapsulated_to_the_predicted_proxy(net: DirectorLab, settings, sink: GueSink) -> None:
    from glb_agent.dataplane.director import XdpDirector, director_ready

    rows = make_rows(2, 5)
    with netns(net.director):
        d = XdpDirector(settings)
        assert d.start() == f"attached-{settings.xdp_mode}"
        ready, why = director_ready("eth0", settings.pin_dir)
        assert not ready and "no tables" in why
        d.update_tables([(SPEC_A, rows)])
        ok, why = director_ready("eth0", settings.pin_dir)
        assert ok, why
    sent = send(net, range(40000, 40016), 3) + send(net, range(41000, 41004), 2, socket.AF_INET6)
    got = sink.wait_for(sent)
    assert len(got) == sent
    pairs = set()
    for r in got:
        proto, secondary, inner = parse_gue(r.payload)
        if proto == 4:
            client, sport, dport, payload = inner_udp(inner)
            assert (client, dport) == (CLIENT_IP, 53)
        else:
            assert proto == 41 and socket.inet_ntop(socket.AF_INET6, inner[8:24]) == CLIENT_IP6
            client, sport = CLIENT_IP6, int.from_bytes(inner[40:42], "big")
            payload = inner[48:]
        assert payload.startswith(f"{sport}:".encode())
        assert (r.primary, secondary) == expected_hops(SPEC_A, rows, client, sport)
        pairs.add((r.primary, secondary))
    assert len(pairs) == 2, "20 flows should use both proxies as primary"
    with netns(net.director):
        counts = d.counters()
        assert counts["dns"]["forwarded_packets"] == sent
        d.stop()
        assert director_ready("eth0", settings.pin_dir)[0] is False


def test_table_swaps_under_traffic_lose_nothing(net: DirectorLab, settings, sink: GueSink) -> None:
    from glb_agent.dataplane.director import XdpDirector

    tables = [[(SPEC_A, make_rows(2, 6))], [(SPEC_B, make_rows(2, 7))]]
    with netns(net.director):
        d = XdpDirector(settings)
        d.start()
        d.update_tables(tables[0])
    stop = threading.Event()
    swaps = []

    def swapper() -> None:
        with netns(net.director):
            i = 1
            while not stop.is_set():
                d.update_tables(tables[i % 2])
                swaps.append(time.monotonic())
                i += 1

    ports = range(42000, 42032)
    socks = [net.client_socket(p) for p in ports]
    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    sent = 0
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline or len(swaps) < 10:
            for s in socks:
                s.sendto(f"{s.getsockname()[1]}:{sent}".encode(), (VIP, 53))
                sent += 1
            time.sleep(0.0005)
    finally:
        stop.set()
        t.join(10)
        for s in socks:
            s.close()
    got = sink.wait_for(sent)
    assert len(swaps) >= 10
    assert len(got) == sent, f"{sent - len(got)} of {sent} packets lost across {len(swaps)} swaps"
    seen_tables = set()
    payloads = set()
    for r in got:
        _proto, secondary, inner = parse_gue(r.payload)
        client, sport, _dport, payload = inner_udp(inner)
        payloads.add(payload)
        hops = (r.primary, secondary)
        a = expected_hops(SPEC_A, tables[0][0][1], client, sport)
        b = expected_hops(SPEC_B, tables[1][0][1], client, sport)
        assert hops in (a, b), f"port {sport}: {hops} is neither table's row ({a}, {b})"
        if a != b:
            seen_tables.add("a" if hops == a else "b")
    assert len(payloads) == sent, "no duplicates"
    assert seen_tables == {"a", "b"}
    with netns(net.director):
        d.stop()


def test_restarted_agent_adopts_and_stop_removes_everything(net: DirectorLab, settings, sink: GueSink) -> None:
    from glb_agent.dataplane.bpfcore import binding
    from glb_agent.dataplane.bpfcore.xdp import attached
    from glb_agent.dataplane.director import XdpDirector, director_ready

    rows = make_rows(2, 8)
    with netns(net.director):
        first = XdpDirector(settings)
        first.start()
        first.update_tables([(SPEC_A, rows)])
        link = binding.link_info(first.link_fd)
        ifindex = socket.if_nametoindex("eth0")
        first.close()  # the agent exits; the pinned link keeps the program attached

        second = XdpDirector(settings)
        assert second.start() == "adopted"
        again = binding.link_info(second.link_fd)
        assert (again.id, again.prog_id) == (link.id, link.prog_id), "same link, same program"
        assert attached(ifindex).prog_id == link.prog_id  # type: ignore[union-attr]
        assert director_ready("eth0", settings.pin_dir)[0]
        second.close()
    n = send(net, range(43000, 43004), 2)
    assert len(sink.wait_for(n)) == n

    # A changed setting means another program: it replaces the old one through the same
    # link, keeps the loaded tables, and traffic flows throughout.
    changed = replace(settings, mtu=1400)
    streamed: list[int] = []
    with streaming(net, range(43100, 43104), streamed):
        with netns(net.director):
            third = XdpDirector(changed)
            assert third.start() == "replaced"
            info = binding.link_info(third.link_fd)
            assert info.id == link.id and info.prog_id != link.prog_id
            assert director_ready("eth0", settings.pin_dir)[0], "tables survive a program replacement"
        time.sleep(0.2)
    assert len(sink.wait_for(n + len(streamed))) == n + len(streamed)
    with netns(net.director):
        # An explicit change of attach mode cannot go through the link: re-attached.
        fourth = XdpDirector(replace(changed, xdp_mode="generic"))
        assert fourth.start() == "attached-generic"
        assert director_ready("eth0", settings.pin_dir)[0], "tables kept across the re-attach"
        third.close()
        fourth.stop()
        assert attached(ifindex) is None
        assert director_ready("eth0", settings.pin_dir)[0] is False
    assert not settings.pin_dir.exists()


def test_director_pinned_by_an_older_release_is_taken_over_without_a_gap(
        net: DirectorLab, settings, sink: GueSink, pin_layout: Path) -> None:
    """An upgrade in place: the old release pinned link and maps at /sys/fs/bpf/glb/<if>
    and kept its bookkeeping in glb_meta. Readiness must keep seeing it (no withdrawal),
    and the new loader must move it to /sys/fs/bpf/glb/director/<if> and swap its program
    through the same link while traffic flows, losing nothing."""
    from glb_agent.dataplane.bpfcore import binding
    from glb_agent.dataplane.bpfcore.maps import META_BYTES, encode_meta
    from glb_agent.dataplane.director import MAP_NAMES, XdpDirector, director_ready

    legacy = pin_layout / "glb" / "eth0"
    rows = make_rows(2, 9)
    with netns(net.director):
        old = XdpDirector(replace(settings, pin_dir=legacy))
        old.start()
        old.update_tables([(SPEC_A, rows)])
        link = binding.link_info(old.link_fd)
        # The old release's bookkeeping map (a map of its director.c, pinned with the others).
        meta_fd = binding.map_create_array("glb_meta", META_BYTES)
        binding.map_update(meta_fd, b"\0" * 4, encode_meta(old.pinned.read_meta()))
        binding.obj_pin(meta_fd, legacy / "glb_meta")
        binding.close(meta_fd)
        (legacy / "meta").unlink()
        old.close()
        ok, why = director_ready("eth0")  # default pin dir: finds the legacy one
        assert ok, why

    streamed: list[int] = []
    with streaming(net, range(44100, 44104), streamed):
        with netns(net.director):
            new = XdpDirector(replace(settings, pin_dir=None))
            assert new.pin_dir == pin_layout / "glb" / "director" / "eth0"
            # The program was built for the old pin path (GLB_PIN_DIR): swapped in place.
            assert new.start() == "replaced"
            info = binding.link_info(new.link_fd)
            assert info.id == link.id and info.prog_id != link.prog_id
            assert not legacy.exists()
            assert new.pinned.read_meta()["slots"] == {"dns": 0}
            # The old release's glb_meta pin went with the takeover: only today's pins remain.
            assert sorted(p.name for p in new.pin_dir.iterdir()) == sorted([*MAP_NAMES, "link", "meta"])
            ok, why = director_ready("eth0")
            assert ok, why
            new.close()
        time.sleep(0.2)
    assert len(sink.wait_for(len(streamed))) == len(streamed), "no packet lost across the takeover"
    print(f"\nMEASURED legacy director takeover: {len(streamed)} datagrams streamed through it, 0 lost")
    with netns(net.director):
        again = XdpDirector(replace(settings, pin_dir=None))
        assert again.start() == "adopted"
        assert again.stop() is True
        assert not (pin_layout / "glb" / "director").exists()
