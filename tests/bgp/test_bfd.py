"""BFD and BGP session security with real daemons: BIRD 2 or FRR 8.4 (bgpd + bfdd) as the
router, ExaBGP + the feed + the feed's BFD speaker (BIRD ``protocol bfd``) on each director,
a real XDP program as the data plane.

A director "loses power" by having every frame to and from its switch port dropped
(bridge-family nftables on the router's br0): the router sees no link change and no
NOTIFICATION. Times are measured from the action to the router's kernel route changing,
polled every 20 ms.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bgp.bgplab import DIRECTOR_IPS, DIRECTOR_IPS6, FRR, VIP, VIP6, BgpLab
from tests.support.netns import Lab, sh, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

D1, D2 = DIRECTOR_IPS["d1"], DIRECTOR_IPS["d2"]
D1_6, D2_6 = DIRECTOR_IPS6["d1"], DIRECTOR_IPS6["d2"]
PASSWORD = "glb-lab-md5-0123"


def _up(netlab: Lab, tmp_path: Path, router: str = "bird", routes: bool = True, **kw) -> BgpLab:
    if router == "frr" and not Path(FRR, "bfdd").exists():
        pytest.skip("frr not installed (scripts/setup.sh)")
    if shutil.which("nft") is None:
        pytest.skip("nft not installed (scripts/setup.sh)")
    lab = BgpLab.create(netlab, tmp_path, router=router, **kw)
    for name in lab.directors:
        lab.attach_xdp(name)
        lab.start_exabgp(name)
    if routes:
        try:
            lab.wait_nexthops(lab.all_directors(), timeout=30)
            lab.wait_nexthops(lab.all_directors(6), prefix=VIP6, timeout=30)
        except TimeoutError:
            print(lab.logs())
            raise
    return lab


@pytest.fixture
def lab_factory(netlab: Lab, tmp_path: Path) -> Iterator:
    made: list[BgpLab] = []

    def make(**kw) -> BgpLab:
        lab = _up(netlab, tmp_path, **kw)
        made.append(lab)
        return lab

    yield make
    for lab in made:
        print(lab.logs())
        lab.close()


def _bfd_up(lab: BgpLab, addresses: set[str], timeout: float = 15) -> None:
    wait_for(lambda: all(lab.router_bfd().get(a, "").lower() == "up" for a in addresses), timeout,
               what=f"router BFD sessions up to {sorted(addresses)} (now {lab.router_bfd()})")


def _route_gone(lab: BgpLab, started: float, timeout: float) -> float:
    wait_for(lambda: lab.nexthops(VIP) == {D2}, timeout, interval=0.02,
               what=f"{VIP} via {D2} only (now {sorted(lab.nexthops(VIP))})")
    return time.monotonic() - started


@pytest.mark.parametrize("router", ["bird", "frr"])
def test_power_loss_removes_the_path_within_bfd_detection(lab_factory, router: str) -> None:
    lab = lab_factory(router=router)
    _bfd_up(lab, {D1, D2, D1_6, D2_6})
    started = time.monotonic()
    lab.power_off("d1")
    took = _route_gone(lab, started, timeout=5)
    six = wait_for(lambda: lab.nexthops(VIP6) == {D2_6}, 2, interval=0.02, what="IPv6 path gone")
    print(f"\nMEASURED {router}: director power loss (bridge drop) -> router route without it: "
          f"{took:.3f}s (IPv6 +{six:.3f}s); BFD 100 ms x 3")
    assert took < 1.0
    assert not lab.bgp_established(D1)
    # Power back: BFD and BGP come back by themselves and the path returns.
    lab.power_on()
    lab.wait_nexthops({D1, D2}, timeout=30)


def test_power_loss_without_bfd_keeps_the_path_for_the_hold_time(lab_factory) -> None:
    """The control: no BFD, hold time 6 s (keepalive 2 s) -- the dead director keeps its path
    until the hold timer expires, 4-6 s after the power loss."""
    lab = lab_factory(bfd=False, hold=6)
    assert lab.router_bfd() == {}
    started = time.monotonic()
    lab.power_off("d1")
    time.sleep(3.0)
    assert lab.nexthops(VIP) == {D1, D2}  # still attracting traffic it will black-hole
    took = _route_gone(lab, started, timeout=10)
    print(f"\nMEASURED control without BFD: power loss -> route without it: {took:.3f}s (hold time 6 s)")
    assert 3.5 < took < 7.5


@pytest.mark.parametrize("router", ["bird", "frr"])
def test_xdp_detached_takes_bfd_and_bgp_down(lab_factory, router: str) -> None:
    """A wedged director (host up, data plane gone): the feed withdraws and silences BFD, so
    the router drops the whole session, not only the routes."""
    lab = lab_factory(router=router)
    _bfd_up(lab, {D1, D2})
    resets, _ = lab.bgp_resets(D1)
    started = time.monotonic()
    lab.detach_xdp("d1")
    took = _route_gone(lab, started, timeout=5)
    wait_for(lambda: lab.router_bfd().get(D1, "").lower() != "up", 2, interval=0.02, what="BFD to d1 down")
    bfd_down = time.monotonic() - started
    # The router resets the BGP session because BFD failed (FRR may re-open it at once: ExaBGP
    # reconnects, and without BFD a router may keep it, but nothing is announced on it).
    wait_for(lambda: lab.bgp_resets(D1)[0] > resets, 3, interval=0.05, what="router's BGP session to d1 reset")
    bgp_down = time.monotonic() - started
    reason = lab.bgp_resets(D1)[1]
    print(f"\nMEASURED {router}: XDP detached -> route withdrawn {took:.3f}s, router BFD down {bfd_down:.3f}s, "
          f"BGP session reset {bgp_down:.3f}s ({reason})")
    if router == "bird":  # BIRD keeps the reason; FRR's lastResetDueTo is overwritten by the
        assert reason == "Error: BFD session down"  # immediate re-open's own reset reason
    assert bfd_down < 1.5 and bgp_down < 2.0
    assert lab.router_bfd().get(D2, "").lower() == "up" and lab.bgp_established(D2)
    events = [e["event"] for e in lab.feed_events("d1")]
    assert "bfd-stop" in events
    time.sleep(1.0)  # still wedged: BFD stays silent, the session does not come back
    assert lab.router_bfd().get(D1, "").lower() != "up" and lab.nexthops(VIP) == {D2}
    lab.attach_xdp("d1")
    lab.wait_nexthops({D1, D2}, timeout=30)
    _bfd_up(lab, {D1})


def test_drained_director_keeps_bfd_and_bgp_through_a_data_plane_stop(lab_factory) -> None:
    """Maintenance of a drained director's data plane (the agent's XDP <-> DPDK switch): with
    every route withdrawn BFD stays up, so the router keeps the BGP session and the
    re-announcement after undrain is one UPDATE, not a new session (compare the test above:
    the same detach without a drain resets the session)."""
    lab = lab_factory()
    _bfd_up(lab, {D1, D2})
    drained = lab.agent("d1", "drain", "--wait", "10")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    _route_gone(lab, time.monotonic(), timeout=5)
    lab.detach_xdp("d1")
    time.sleep(1.5)  # five times BFD's detection time (100 ms x 3)
    assert lab.router_bfd().get(D1, "").lower() == "up"
    assert lab.bgp_established(D1) and lab.bgp_resets(D1)[0] == 0, lab.bgp_resets(D1)
    lab.attach_xdp("d1")
    started = time.monotonic()
    undrained = lab.agent("d1", "undrain", "--wait", "10")
    assert undrained.returncode == 0, undrained.stdout + undrained.stderr
    took = lab.wait_nexthops({D1, D2}, timeout=5)
    print(f"\nMEASURED undrain -> route back {time.monotonic() - started:.3f}s (wait {took:.3f}s)")
    assert lab.bgp_resets(D1)[0] == 0 and "bfd-stop" not in [e["event"] for e in lab.feed_events("d1")]
    # Undrained with no data plane: BFD goes silent again, as for any wedged director.
    lab.detach_xdp("d1")
    wait_for(lambda: lab.router_bfd().get(D1, "").lower() != "up", 3, interval=0.05, what="BFD to d1 down")


@pytest.mark.parametrize("router", ["bird", "frr"])
def test_md5_and_gtsm_right_password_routes(lab_factory, router: str) -> None:
    lab = lab_factory(router=router, password=PASSWORD, ttl_security=True)
    assert lab.bgp_established(D1) and lab.bgp_established(D1_6)
    conf = lab.directors["d1"].conf.read_text()
    assert f'md5-password "{PASSWORD}";' in conf and "incoming-ttl 255;" in conf
    status = lab.agent("d1", "bgp", "status")
    assert '"state": "up"' in status.stdout, status.stdout


@pytest.mark.parametrize("router", ["bird", "frr"])
def test_md5_wrong_password_never_comes_up(lab_factory, router: str) -> None:
    lab = lab_factory(router=router, routes=False, password=PASSWORD, router_password="not-the-password",
                      feed_args={d: ["--readiness", "xdp", "--session-warn", "3"] for d in DIRECTOR_IPS})
    wait_for(lambda: any(e["event"] == "session-not-established" for e in lab.feed_events("d1")), 20,
               what="the feed's session-not-established warning")
    assert lab.nexthops(VIP) == set() and lab.nexthops(VIP6) == set()
    assert not lab.bgp_established(D1)
    warning = next(e for e in lab.feed_events("d1") if e["event"] == "session-not-established")
    print(f"\nLOG LINE {warning}")
    assert warning["md5"] is True and "TCP-MD5 password" in warning["hint"]
    # The router's kernel dropped the directors' signed SYNs: its MD5 failure counter says so.
    assert _md5_failures(lab.router) > 0


def _md5_failures(ns: str) -> int:
    out = sh("nstat", "-asz", "TcpExtTCPMD5Failure", ns=ns).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.startswith("TcpExtTCPMD5Failure"))
