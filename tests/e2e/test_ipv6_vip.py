"""IPv6 clients through the whole lab: the router learns the IPv6 VIP (/128) over its IPv6 BGP
sessions from both directors (next hop = each director's address6), the director XDP carries
the IPv6 packets to the proxies inside IPv4 GUE, the proxies answer the clients directly, and
long-lived IPv6 connections survive a director drain (the router drops one path, the other
director computes the same table).

Runs the real lab (namespaces, BIRD, ExaBGP, XDP directors, eBPF proxies) through
glb_agent.lab.run with the lab's own glb.yml.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glb_agent.config import load_config
from glb_agent.lab import netns
from glb_agent.lab import run as lab
from glb_agent.lab.topology import CLIENT_NS, plan
from tests.support.netns import can_run

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

VIP6 = "2001:db8:100::10"
D1_6, D2_6 = "2001:db8:18::11", "2001:db8:18::12"
N_CONNS = 48
AGENT = str(Path(sys.executable).with_name("glb-agent"))


@pytest.fixture
def lab_up():
    if why := can_run():
        pytest.skip(why)
    lab.down(quiet=True)
    try:
        yield lab.up(lab.DEFAULT_CONFIG)
    finally:
        lab.down(quiet=True)


def _keeper(tmp: Path, sources: list[str]) -> tuple[subprocess.Popen, Path]:
    report = tmp / "conns6.json"
    proc = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{CLIENT_NS}", sys.executable, "-m", "glb_agent.lab.conns",
         "--vip", VIP6, "--sources", ",".join(sources), "--count", str(N_CONNS), "--interval", "0.3",
         "--timeout", "9", "--duration", "300", "--report", str(report)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, report


def _read(report: Path) -> dict | None:
    try:
        return json.loads(report.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_ipv6_clients_through_directors_and_proxies(lab_up, tmp_path: Path) -> None:
    assert lab.nexthops(VIP6) == {D1_6, D2_6}
    out = netns.run("ip", "-6", "route", "show", "exact", VIP6, ns=lab_up.router.ns).stdout
    assert "nexthop via" in out, out  # one multipath route: the router hashes flows over both

    report = lab.demo(lab.DEFAULT_CONFIG, requests=48)
    v6 = report["ipv6"]
    assert v6 is not None and v6["vip"] == VIP6
    assert v6["failures"] == 0 and sum(v6["proxies"].values()) == 48
    assert len(v6["proxies"]) == 3, v6  # the source hash spreads clients over every proxy
    assert report["ipv4_failures"] == 0  # the IPv4 VIP is unaffected
    assert all(n > 0 for n in report["director_packets"].values()), report["director_packets"]

    # Long-lived IPv6 connections across a drain of d1.
    sources = [str(a) for a in plan(load_config(lab.DEFAULT_CONFIG)).client_addresses6][:24]
    keeper, conns = _keeper(tmp_path, sources)
    try:
        lab.wait_for(lambda: (r := _read(conns)) is not None and r["alive"] == N_CONNS, 60,
                     f"{N_CONNS} IPv6 connections up")
        started = time.monotonic()
        drain = subprocess.run(["nsenter", "--net=/run/netns/glb-lab-d1", AGENT, "drain", "--wait", "20"],
                               env={"GLB_STATE_DIR": str(lab.RUN_DIR / "d1"), "PATH": "/usr/bin:/bin"},
                               capture_output=True, text=True, timeout=60)
        assert drain.returncode == 0, drain.stdout + drain.stderr
        lab.wait_for(lambda: lab.nexthops(VIP6) == {D2_6}, 20, "d1's IPv6 path withdrawn")
        print(f"\nMEASURED lab: drain -> router IPv6 route change: {time.monotonic() - started:.2f}s")
        time.sleep(2.0)  # every connection exchanges several times through d2 alone
        after = _read(conns)
        assert after is not None and after["broken"] == 0 and after["alive"] == N_CONNS, after
        gaps = [c["max_gap"] for c in after["connections"] if c.get("max_gap") is not None]
        print(f"MEASURED lab: {N_CONNS} IPv6 connections across the drain: 0 broken, "
              f"longest stall {max(gaps, default=0):.2f}s")
        # New IPv6 clients are still served, by every proxy, through d2 only.
        again = lab.demo(lab.DEFAULT_CONFIG, requests=24)
        assert again["ipv6"]["failures"] == 0 and again["director_packets"].get("d1", 0) == 0
    finally:
        keeper.send_signal(signal.SIGTERM)
        keeper.wait(timeout=30)
