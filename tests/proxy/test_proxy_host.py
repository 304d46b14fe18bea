"""Host setup and program lifecycle: apply is idempotent, stop undoes only what apply did,
a restarted agent adopts the running program, a foreign XDP program is never replaced,
and the CLI drives all of it from glb.yml."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glb_agent.dataplane.bpfcore import binding
from glb_agent.dataplane.bpfcore.maps import Map
from glb_agent.dataplane.bpfcore.xdp import attached
from glb_agent.dataplane.proxy import ProxyDataplane, ProxySettings
from glb_agent.errors import GlbError
from glb_agent.proxy.host import ProxyHost, read_sysctl, write_sysctl
from tests.proxy.support import netns
from tests.support.netns import Lab, bpf_unavailable, sh

pytestmark = [pytest.mark.bpf, pytest.mark.netns]

PROXY, PEER, DIRECTOR = "198.18.0.21", "198.18.0.22", "198.18.0.1"


@pytest.fixture
def host_ns(pin_root: Path) -> Iterator[str]:
    """A fresh namespace with eth0 (198.18.0.21/24); the test thread lives in it."""
    why = bpf_unavailable()
    if why:
        pytest.skip(why)
    with Lab() as lab:
        ns = lab.ns("pxhost")
        sh("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p", ns=ns)
        for dev in ("eth0", "eth0p"):
            sh("ip", "link", "set", dev, "up", ns=ns)
        sh("ip", "addr", "add", f"{PROXY}/24", "dev", "eth0", ns=ns)
        with netns(ns):
            yield ns


def settings(pin_root: Path, ns: str, **kw: object) -> ProxySettings:
    base = dict(interface="eth0", address=PROXY, allowed_senders=(DIRECTOR,), peers=(PEER,),
                vips=("203.0.113.10", "2001:db8:100::10"), pin_dir=pin_root / ns)
    base.update(kw)
    return ProxySettings(**base)  # type: ignore[arg-type]


def lo_addresses() -> set[str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        lo = ipr.link_lookup(ifname="lo")[0]
        return {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=lo)}


def managed_neighbours() -> set[str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return {n.get_attr("NDA_DST") for n in ipr.get_neighbours(family=2)
                if (n.get_attr("NDA_FLAGS_EXT") or 0) & 1}


def test_apply_is_idempotent_and_stop_reverts_only_our_changes(host_ns: str, pin_root: Path,
                                                               tmp_path: Path) -> None:
    # Things that were there before the agent: a VIP already on lo, a sysctl already right.
    sh("ip", "addr", "add", "203.0.113.10/32", "dev", "lo", ns=host_ns)
    write_sysctl("net.ipv4.conf.all.arp_announce", "2")
    before = {k: read_sysctl(k) for k in ("net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.eth0.rp_filter",
                                          "net.ipv4.conf.lo.forwarding")}
    host = ProxyHost(settings(pin_root, host_ns), state_dir=tmp_path)

    changes = host.apply()
    assert any(c.startswith("xdp: loaded") for c in changes)
    assert "lo: added 2001:db8:100::10/128" in changes
    assert not any("203.0.113.10" in c for c in changes)
    assert not any("all.arp_announce" in c for c in changes)
    assert {"203.0.113.10/32", "2001:db8:100::10/128"} <= lo_addresses()
    assert read_sysctl("net.ipv4.conf.eth0.arp_ignore") == "1"
    assert read_sysctl("net.ipv4.conf.eth0.arp_announce") == "2"
    assert read_sysctl("net.ipv4.conf.eth0.rp_filter") == "2"
    assert read_sysctl("net.ipv4.conf.lo.forwarding") == "1"
    assert PEER in managed_neighbours()
    att = attached("eth0")
    assert att is not None and att.name == "xdp_glb_proxy" and att.mode == "native"

    assert host.apply() == []  # second apply: nothing to do
    assert ProxyHost(settings(pin_root, host_ns), state_dir=tmp_path).apply() == []  # restarted agent

    # An operator changes one of our sysctls afterwards: stop must leave their value alone.
    write_sysctl("net.ipv4.conf.eth0.arp_announce", "1")
    changes = host.stop()
    assert "xdp: detached from eth0, pins removed" in changes
    assert attached("eth0") is None
    assert not (pin_root / host_ns).exists()
    assert "203.0.113.10/32" in lo_addresses()  # was there before us
    assert "2001:db8:100::10/128" not in lo_addresses()
    assert PEER not in managed_neighbours()
    assert {k: read_sysctl(k) for k in before} == before
    assert read_sysctl("net.ipv4.conf.all.arp_announce") == "2"
    assert read_sysctl("net.ipv4.conf.eth0.arp_announce") == "1"
    assert not (tmp_path / "eth0.json").exists()
    assert host.stop() == []


def test_changed_settings_converge(host_ns: str, pin_root: Path, tmp_path: Path) -> None:
    host = ProxyHost(settings(pin_root, host_ns), state_dir=tmp_path)
    host.apply()
    try:
        prog_id = host.dataplane.pinned_prog_id()
        new = settings(pin_root, host_ns, vips=("203.0.113.11",), allowed_senders=("198.18.0.2",),
                       vip_prefixes=("203.0.113.64/28",))
        changes = ProxyHost(new, state_dir=tmp_path).apply()
        assert "lo: added 203.0.113.11/32" in changes
        assert "lo: removed 203.0.113.10/32" in changes
        assert "lo: added 203.0.113.64/28" in changes
        assert any(c.startswith("xdp: adopted") and "map entries" in c for c in changes)
        assert ProxyDataplane(new).pinned_prog_id() == prog_id  # same program, new maps
        with Map.open(new.pin_dir / "proxy_senders") as senders:
            assert {ipaddress.IPv4Address(k) for k in list(senders.keys())} == {
                ipaddress.IPv4Address("198.18.0.2"), ipaddress.IPv4Address(PEER)}
        with Map.open(new.pin_dir / "proxy_dsts") as dsts:
            assert len(list(dsts.keys())) == 3  # VIP, VIP prefix, own address
    finally:
        host.stop()
    assert "203.0.113.11/32" not in lo_addresses()


def test_restart_adopts_running_program_and_keeps_counters(host_ns: str, pin_root: Path) -> None:
    s = settings(pin_root, host_ns)
    first = ProxyDataplane(s).start()
    try:
        assert first.action == "loaded"
        # Count something: a spoofed GUE packet run through the attached program.
        fd = ProxyDataplane(s).prog_fd()
        from tests.proxy.support import gue_frame, run_on, tcp_packet
        run_on(fd, gue_frame(tcp_packet("192.0.2.9", "203.0.113.10", 1, 80), src="192.0.2.9", dst=PROXY))
        import os
        os.close(fd)
        again = ProxyDataplane(s).start()
        assert (again.action, again.prog_id, again.map_changes) == ("adopted", first.prog_id, 0)
        assert ProxyDataplane(s).counters()["drop_sender"] == 1
        # Asking for another XDP mode cannot adopt: the program is reloaded in that mode.
        switched = ProxyDataplane(dataclasses.replace(s, xdp_mode="generic")).start()
        assert switched.action == "replaced" and switched.mode == "generic"
        assert attached("eth0").mode == "generic"  # type: ignore[union-attr]
        assert ProxyDataplane(s).counters()["drop_sender"] == 0  # a new program counts afresh
    finally:
        ProxyDataplane(s).stop()


def test_foreign_xdp_program_is_left_alone(host_ns: str, pin_root: Path) -> None:
    from bcc import BPF

    other = BPF(text=b"int xdp_foreign(struct xdp_md *ctx) { return XDP_PASS; }")
    fn = other.load_func(b"xdp_foreign", BPF.XDP)
    idx = socket.if_nametoindex("eth0")
    link = binding.xdp_link_create(fn.fd, idx, "native")
    try:
        dp = ProxyDataplane(settings(pin_root, host_ns))
        with pytest.raises(GlbError, match="xdp_foreign"):
            dp.start()
        assert dp.stop() is False
        assert attached("eth0").name == "xdp_foreign"  # type: ignore[union-attr]
    finally:
        binding.close(link)
        other.cleanup()


def test_settings_reject_bad_input() -> None:
    from glb_agent.errors import InputError

    with pytest.raises(InputError):
        ProxySettings(interface="eth0", address="not-an-ip", allowed_senders=(), vips=())  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ProxySettings(interface="x" * 20, address=PROXY, allowed_senders=(), vips=())  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ProxySettings(interface="eth0", address=PROXY, allowed_senders=(), vips=(), gue_port=0)  # type: ignore[arg-type]


CONFIG = """\
fleet:
  name: lab
  secret: lab-secret-not-for-production
bgp:
  local_asn: 65100
  peers: [{name: r1, address: 198.18.0.254, asn: 65000}]
directors:
  - {name: d1, address: 198.18.0.1, interface: eth0, gateway_mac: "02:47:4c:00:00:01"}
  - {name: d2, address: 198.18.0.2, interface: eth0, gateway_mac: "02:47:4c:00:00:01", source_ip: 198.18.0.12}
proxies:
  - {name: p1, address: 198.18.0.21, interface: eth0, directors: [d2]}
  - {name: p2, address: 198.18.0.22, interface: eth0}
services:
  - name: web
    vips: [203.0.113.10, "2001:db8:100::10"]
    ports: [80]
    cidrs: [203.0.113.32/28]
    backends: [{address: 198.18.0.21}, {address: 198.18.0.22}]
  - name: other
    vips: [203.0.113.20]
    ports: [443]
    backends: [{address: 198.18.0.22}]
"""


def test_settings_from_config(tmp_path: Path) -> None:
    from glb_agent.config import load_config
    from glb_agent.proxy.config import proxy_settings

    path = tmp_path / "glb.yml"
    path.write_text(CONFIG)
    cfg = load_config(path)
    s = proxy_settings(cfg, local_addresses={ipaddress.IPv4Address("198.18.0.21")})
    assert s.interface == "eth0" and str(s.address) == "198.18.0.21"
    assert [str(a) for a in s.allowed_senders] == ["198.18.0.12"]  # only d2, by its GUE source
    assert [str(a) for a in s.peers] == ["198.18.0.22"]
    assert [str(v) for v in s.vips] == ["203.0.113.10", "2001:db8:100::10"]  # not 'other'
    assert [str(n) for n in s.vip_prefixes] == ["203.0.113.32/28"]
    assert s.gue_port == 19523
    p2 = proxy_settings(cfg, "p2")
    assert {str(a) for a in p2.allowed_senders} == {"198.18.0.1", "198.18.0.12"}
    assert {str(v) for v in p2.vips} == {"203.0.113.10", "2001:db8:100::10", "203.0.113.20"}
    from glb_agent.errors import InputError
    with pytest.raises(InputError, match="pass --name"):
        proxy_settings(cfg, local_addresses=set())
    with pytest.raises(InputError, match="no proxy named"):
        proxy_settings(cfg, "p9")


def test_cli_apply_status_stop(host_ns: str, pin_root: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from glb_agent.cli import main

    path = tmp_path / "glb.yml"
    path.write_text(textwrap.dedent(CONFIG))
    common = [str(path), "--state-dir", str(tmp_path / "state"), "--pin-dir", str(pin_root / host_ns)]
    assert main(["proxy", "status", *common]) == 1  # name found from the local address
    capsys.readouterr()
    assert main(["proxy", "apply", *common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and any(c.startswith("xdp: loaded") for c in out["changes"])
    assert "203.0.113.32/28" in lo_addresses()
    assert main(["proxy", "apply", *common]) == 0
    assert capsys.readouterr().out.strip() == "eth0: nothing to change"
    assert main(["proxy", "status", *common, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["running"] and status["current_build"] and all(status["sysctls_ok"].values())
    assert main(["proxy", "stop", *common]) == 0
    assert "xdp: detached" in capsys.readouterr().out
    assert main(["proxy", "status", *common]) == 1
    assert main(["proxy", "apply", *common, "--name", "nope"]) == 2


def test_counter_names_match_the_program(host_ns: str, pin_root: Path) -> None:
    """The agent reads counter names from proxy_defs.h; the program sizes its map from the
    same enum, so names and indices can never drift apart."""
    from glb_agent.dataplane.proxy import counter_names

    s = settings(pin_root, host_ns)
    dp = ProxyDataplane(s)
    dp.start()
    try:
        with Map.open(s.pin_dir / "proxy_stats", percpu=True) as stats:
            assert stats.max_entries == len(counter_names())
        assert list(dp.counters()) == list(counter_names())
        assert counter_names()[0] == "rx_gue" and "drop_sender" in counter_names()
    finally:
        dp.stop()


def legacy_install(s: ProxySettings, legacy: Path, digest: bytes) -> int:
    """What the release before links left on a host: the program attached through netlink,
    program and maps pinned at /sys/fs/bpf/glb-proxy/<if>, its build digest in proxy_build.
    Returns the program id."""
    from bcc import BPF

    from glb_agent.dataplane.proxy import BPF_DIR, CFLAGS, MAPS, SOURCE, desired_maps, sync_map

    bpf = BPF(src_file=str(SOURCE).encode(), cflags=[f"-I{BPF_DIR / 'include'}", *CFLAGS])
    fn = bpf.load_func(b"xdp_glb_proxy", BPF.XDP)
    legacy.mkdir(parents=True)
    for name in MAPS:
        m = Map(os.dup(bpf.get_table(name.encode()).map_fd), percpu=name == "proxy_stats")
        with m:
            sync_map(m, desired_maps(s).get(name, {}), array=True)
            binding.obj_pin(m.fd, legacy / name)
    # That release's proxy.c also had a proxy_build map: one entry, the 32-byte digest.
    with Map(binding.map_create_array("proxy_build", 32)) as build:
        build.update(b"\0" * 4, digest)
        binding.obj_pin(build.fd, legacy / "proxy_build")
    binding.obj_pin(fn.fd, legacy / "prog")
    bpf.attach_xdp(s.interface.encode(), fn, BPF.XDP_FLAGS_DRV_MODE)
    prog_id = binding.prog_info(fn.fd).id
    bpf.cleanup()  # the attachment and the pins keep program and maps alive, as after an exit
    return prog_id


def watch_attachment(ns: str, interface: str) -> tuple[threading.Event, list[object]]:
    """Poll what runs on ``interface`` in ``ns`` until the event is set; the list gets every
    answer. Returns once the first answer is in."""
    from glb_agent.lab.netns import inside

    stop, seen = threading.Event(), []

    def poll() -> None:
        with inside(ns):
            while not stop.is_set():
                seen.append(attached(interface))

    threading.Thread(target=poll, daemon=True).start()
    while not seen:
        time.sleep(0.001)
    return stop, seen


@pytest.mark.parametrize("same_build", [True, False])
def test_proxy_attached_by_an_older_release_is_taken_over_without_a_gap(
        host_ns: str, pin_layout: Path, same_build: bool) -> None:
    """Same build: adopted as it runs. Another build (an upgrade): swapped with netlink's
    atomic replace -- the kernel cannot turn a netlink attachment into a link without a
    detach -- and every later attachment is a link."""
    from glb_agent.dataplane.proxy import build_digest

    s = settings(pin_layout, host_ns, pin_dir=None)
    assert s.pin_dir == pin_layout / "glb" / "proxy" / "eth0"
    legacy = pin_layout / "glb-proxy" / "eth0"
    old_id = legacy_install(s, legacy, build_digest() if same_build else bytes(32))
    dp = ProxyDataplane(s)
    assert dp.status()["running"] and dp.status()["pin_dir"] == str(legacy)  # before the takeover
    stop, seen = watch_attachment(host_ns, "eth0")
    try:
        report = dp.start()
    finally:
        stop.set()
    assert seen and all(a is not None and a.name == "xdp_glb_proxy" for a in seen), "never nothing attached"
    assert not legacy.exists() and not legacy.parent.exists()
    status = dp.status()
    assert status["running"] and status["attach"] == "netlink" and status["pin_dir"] == str(s.pin_dir)
    assert status["current_build"]
    if same_build:
        assert (report.action, report.prog_id, report.map_changes) == ("adopted", old_id, 0)
    else:
        assert report.action == "replaced" and report.prog_id != old_id and report.mode == "native"
        assert attached("eth0").prog_id == report.prog_id  # type: ignore[union-attr]
    assert ProxyDataplane(s).start().action == "adopted"
    assert dp.stop() is True
    assert attached("eth0") is None and not s.pin_dir.exists()
    fresh = ProxyDataplane(s).start()  # from now on: a link
    try:
        assert fresh.action == "loaded" and (s.pin_dir / "link").exists()
        assert ProxyDataplane(s).status()["attach"] == "link"
    finally:
        ProxyDataplane(s).stop()
