"""End to end with real daemons: BIRD in a router namespace, ExaBGP + the feed in two
director namespaces, a real XDP program as each director's data plane. The router's
kernel route for the VIP must follow readiness, drain and ExaBGP's death."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.bgp.bgplab import CIDR, DIRECTOR_IPS, DIRECTOR_IPS6, VIP, VIP6, BgpLab
from tests.support.netns import wait_for

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

D1, D2 = DIRECTOR_IPS["d1"], DIRECTOR_IPS["d2"]
D1_6, D2_6 = DIRECTOR_IPS6["d1"], DIRECTOR_IPS6["d2"]


def test_both_directors_are_ecmp_paths_for_every_prefix(bgplab: BgpLab) -> None:
    assert bgplab.nexthops(VIP) == {D1, D2}
    assert bgplab.nexthops(CIDR) == {D1, D2}
    # The IPv6 VIP rides the IPv6 sessions with each director's address6 as next hop.
    assert bgplab.nexthops(VIP6) == {D1_6, D2_6}
    assert "nexthop via" in bgplab.route_text(VIP6)  # one multipath kernel route, not two routes
    assert bgplab.bird_paths(VIP6) == {D1_6, D2_6} and bgplab.bird_paths(VIP) == {D1, D2}
    # Each family only on its own sessions: BIRD holds no IPv4 prefix from an IPv6 session.
    assert not [e for e in bgplab.feed_events("d1") if e["event"] in ("not-announceable", "announce-error")]
    status = bgplab.agent("d1", "bgp", "status")
    assert status.returncode == 0 and '"203.0.113.10/32"' in status.stdout and VIP6 in status.stdout


def test_drain_withdraws_and_undrain_restores(bgplab: BgpLab) -> None:
    started = time.monotonic()
    done = bgplab.agent("d1", "drain", "--wait", "5", "--reason", "test")
    confirmed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    bgplab.wait_nexthops({D2}, timeout=3)
    bgplab.wait_nexthops({D2}, prefix=CIDR, timeout=1)
    bgplab.wait_nexthops({D2_6}, prefix=VIP6, timeout=1)
    took = time.monotonic() - started
    print(f"\nMEASURED drain -> router route change: {took:.2f}s (feed confirmed after {confirmed:.2f}s)")
    assert took < 2.0
    events = [e["event"] for e in bgplab.feed_events("d1")]
    assert "drained" in events and events[-1] == "withdraw"
    # The flag persists: an ExaBGP (and feed) restart must not re-announce a drained host.
    bgplab.signal_exabgp("d1", signal.SIGKILL)
    bgplab.directors["d1"].proc.wait(timeout=5)
    bgplab.start_exabgp("d1")
    wait_for(lambda: len(bgplab.feed_events("d1")) > len(events) + 2, 10, what="restarted feed")
    time.sleep(1.0)  # several poll intervals: long enough for a wrong announcement to show
    assert bgplab.nexthops(VIP) == {D2} and bgplab.nexthops(VIP6) == {D2_6}
    assert bgplab.agent("d1", "undrain", "--wait", "5").returncode == 0
    bgplab.wait_nexthops({D1, D2}, timeout=5)
    bgplab.wait_nexthops({D1_6, D2_6}, prefix=VIP6, timeout=5)


def test_ipv6_vip_follows_drain_and_the_data_plane(bgplab: BgpLab) -> None:
    """The IPv6 /128 on the IPv6 sessions obeys the same gating as the IPv4 VIP."""
    started = time.monotonic()
    assert bgplab.agent("d2", "drain", "--wait", "5").returncode == 0
    bgplab.wait_nexthops({D1_6}, prefix=VIP6, timeout=3)
    took = time.monotonic() - started
    print(f"\nMEASURED drain -> router IPv6 route change: {took:.2f}s")
    assert took < 2.0
    assert bgplab.nexthops(VIP) == {D1}  # the IPv4 session withdrew too, nothing else moved
    assert bgplab.agent("d2", "undrain", "--wait", "5").returncode == 0
    bgplab.wait_nexthops({D1_6, D2_6}, prefix=VIP6, timeout=5)
    # Data plane gone on both: the /128 disappears from the router; back when re-attached.
    bgplab.detach_xdp("d1")
    bgplab.wait_nexthops({D2_6}, prefix=VIP6, timeout=3)
    bgplab.detach_xdp("d2")
    started = time.monotonic()
    bgplab.wait_nexthops(set(), prefix=VIP6, timeout=3)
    print(f"\nMEASURED data plane detached -> IPv6 route withdrawn: {time.monotonic() - started:.2f}s")
    assert bgplab.bird_paths(VIP6) == set()
    bgplab.attach_xdp("d2")
    bgplab.wait_nexthops({D2_6}, prefix=VIP6, timeout=5)
    # Feed stop (agent stop): it withdraws on both families before exiting.
    pid = bgplab.feed_pids("d2")[0]
    os.kill(pid, signal.SIGTERM)
    bgplab.wait_nexthops(set(), prefix=VIP6, timeout=3)


def test_data_plane_detach_withdraws_and_reattach_announces(bgplab: BgpLab) -> None:
    bgplab.detach_xdp("d1")
    bgplab.wait_nexthops({D2}, timeout=3)
    bgplab.wait_nexthops({D2_6}, prefix=VIP6, timeout=1)
    reasons = [e.get("reason", "") for e in bgplab.feed_events("d1") if e["event"] == "not-ready"]
    assert reasons and "no XDP program" in reasons[-1]
    bgplab.detach_xdp("d2")
    bgplab.wait_nexthops(set(), timeout=3)  # no director can forward: the VIP disappears
    bgplab.attach_xdp("d1")
    bgplab.wait_nexthops({D1}, timeout=5)
    bgplab.attach_xdp("d2")
    bgplab.wait_nexthops({D1, D2}, timeout=5)


def test_sigkill_of_exabgp_drops_its_path_and_the_feed(bgplab: BgpLab) -> None:
    assert bgplab.feed_pids("d1")
    started = time.monotonic()
    bgplab.signal_exabgp("d1", signal.SIGKILL)
    bgplab.wait_nexthops({D2}, timeout=5)  # the kernel closes the TCP session at once
    bgplab.wait_nexthops({D2_6}, prefix=VIP6, timeout=5)
    took = time.monotonic() - started
    print(f"\nMEASURED SIGKILL of ExaBGP -> router route change: {took:.2f}s")
    assert took < 3 + 1  # never longer than the hold time
    wait_for(lambda: not bgplab.feed_pids("d1"), 5, what="the orphaned feed to exit")
    bgplab.start_exabgp("d1")
    bgplab.wait_nexthops({D1, D2}, timeout=10)


def test_frozen_director_loses_its_path_within_the_hold_time(bgplab: BgpLab) -> None:
    """SIGSTOP keeps the TCP session open but silent, like a hung or cut-off host."""
    started = time.monotonic()
    bgplab.signal_exabgp("d1", signal.SIGSTOP)
    try:
        bgplab.wait_nexthops({D2}, timeout=3 + 2)
        took = time.monotonic() - started
    finally:
        bgplab.signal_exabgp("d1", signal.SIGCONT)
    print(f"\nMEASURED frozen ExaBGP (hold time 3 s) -> router route change: {took:.2f}s")
    assert 1.0 < took < 3 + 1.5


def test_sigterm_of_feed_withdraws_before_it_exits(bgplab: BgpLab) -> None:
    pid = bgplab.feed_pids("d1")[0]
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    bgplab.wait_nexthops({D2}, timeout=3)
    print(f"\nMEASURED SIGTERM of the feed -> router route change: {time.monotonic() - started:.2f}s")
    # The feed's last lines reach ExaBGP's log through a pipe: the router can see the
    # withdrawal before the log shows the stop event (one CI run read it 7 ms too early).
    def stops() -> list[dict]:
        return [e for e in bgplab.feed_events("d1") if e["event"] == "stop"]

    wait_for(lambda: bool(stops()), 5, what="the feed's stop event in ExaBGP's log")
    assert stops()[-1]["announced"] == 0
    bgplab.wait_nexthops({D1, D2}, timeout=10)  # ExaBGP respawns the feed, which re-announces


@pytest.mark.parametrize("bgplab", ["frr"], indirect=True)
def test_frr_router_ecmp_and_drain(bgplab: BgpLab) -> None:
    """The same directors against FRR, which installs the ECMP route as a nexthop group."""
    assert bgplab.nexthops(CIDR) == {D1, D2}
    assert "nhid" in bgplab.route_text(VIP) and "nhid" in bgplab.route_text(VIP6)
    started = time.monotonic()
    assert bgplab.agent("d2", "drain", "--wait", "5").returncode == 0
    bgplab.wait_nexthops({D1}, timeout=3)
    bgplab.wait_nexthops({D1_6}, prefix=VIP6, timeout=3)
    print(f"\nMEASURED drain -> FRR route change (IPv4 and IPv6): {time.monotonic() - started:.2f}s")
    assert bgplab.agent("d2", "undrain").returncode == 0
    bgplab.wait_nexthops({D1, D2}, timeout=5)
    bgplab.wait_nexthops({D1_6, D2_6}, prefix=VIP6, timeout=5)
