"""The feed gated by the real data plane: glb_agent.dataplane.director's program and
tables in director 1's namespace, ``--readiness dataplane``, BIRD as the router.

Director 2 keeps the plain XDP check, so the router always has one path and the test
sees director 1's path come and go with its data plane's state."""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from glb_agent.config import load_config
from tests.bgp.bgplab import DIRECTOR_IPS, BgpLab
from tests.support.netns import Lab, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

D1, D2 = DIRECTOR_IPS["d1"], DIRECTOR_IPS["d2"]


@pytest.fixture
def real_lab(netlab: Lab, tmp_path: Path) -> Iterator[tuple[BgpLab, object, Path]]:
    from glb_agent.dataplane.director import DirectorSettings, XdpDirector

    if not Path("/sys/fs/bpf").is_mount():
        pytest.skip("bpffs not mounted at /sys/fs/bpf")
    from tests.dataplane.netlab import netns

    pin = Path(f"/sys/fs/bpf/glbt-{secrets.token_hex(3)}/eth0")
    lab = BgpLab.create(netlab, tmp_path, feed_args={
        "d1": ["--readiness", "dataplane", "--pin-dir", str(pin)]})
    settings = DirectorSettings("eth0", ipaddress.IPv4Address(D1), "02:47:4c:00:00:01",
                                pin_dir=pin, xdp_mode="native")
    try:
        yield lab, settings, netns
    finally:
        with netns(lab.directors["d1"].ns):
            XdpDirector(settings).stop()
        with contextlib.suppress(OSError):
            pin.parent.rmdir()
        lab.close()


def test_real_director_readiness_gates_the_announcement(real_lab) -> None:
    from glb_agent.dataplane.director import XdpDirector
    from glb_agent.dataplane.director_config import director_tables

    lab, settings, netns = real_lab
    loaded = load_config(lab.config)
    tables = director_tables(loaded)  # the rows as the director agent hands them to the loader
    lab.attach_xdp("d2")
    for name in lab.directors:
        lab.start_exabgp(name)
    lab.wait_nexthops({D2})
    with netns(lab.directors["d1"].ns):
        director = XdpDirector(settings)
        director.start()
    # Program attached but no tables yet: the data plane says not ready, nothing announced.
    wait_for(lambda: any("no tables loaded" in e.get("reason", "") for e in lab.feed_events("d1")
                           if e["event"] == "not-ready"), 5, what="the feed to see the program without tables")
    assert lab.nexthops() == {D2}
    with netns(lab.directors["d1"].ns):
        director.update_tables(tables)
    lab.wait_nexthops({D1, D2}, timeout=5)
    ready = [e for e in lab.feed_events("d1") if e["event"] == "ready"]
    assert ready and "generation" in ready[-1]["reason"]
    with netns(lab.directors["d1"].ns):
        XdpDirector(settings).stop()  # as another process would: detach and unpin
    lab.wait_nexthops({D2}, timeout=3)
