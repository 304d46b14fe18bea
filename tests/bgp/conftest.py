"""Fixtures for the namespace tests: a router (BIRD) and two directors (ExaBGP + feed)."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bgp.bgplab import FRR, VENV_BIN, VIP6, BgpLab
from tests.support.netns import Lab, can_run


def lab_unavailable() -> str | None:
    why = can_run()
    if why:
        return why
    if shutil.which("bird") is None:
        return "bird2 not installed (run scripts/setup.sh)"
    if not (VENV_BIN / "exabgp").exists():
        return "exabgp not installed in the venv"
    if importlib.util.find_spec("bcc") is None:
        return "bcc (python3-bpfcc) not importable"
    return None


@pytest.fixture
def netlab() -> Iterator[Lab]:
    why = lab_unavailable()
    if why:
        pytest.skip(why)
    with Lab() as lab:
        yield lab


@pytest.fixture
def bgplab(request: pytest.FixtureRequest, netlab: Lab, tmp_path: Path) -> Iterator[BgpLab]:
    """Both directors ready (XDP attached), ExaBGP running, the IPv4 and IPv6 VIPs on two
    paths each at the router.

    The router runs BIRD unless the test parametrizes this fixture indirectly with "frr".
    """
    router = getattr(request, "param", "bird")
    if router == "frr" and not Path(FRR, "bgpd").exists():
        pytest.skip("frr not installed (scripts/setup.sh)")
    lab = BgpLab.create(netlab, tmp_path, router=router)
    request.addfinalizer(lab.close)
    for name in lab.directors:
        lab.attach_xdp(name)
        lab.start_exabgp(name)
    try:
        lab.wait_nexthops(lab.all_directors())
        lab.wait_nexthops(lab.all_directors(6), prefix=VIP6)
    except TimeoutError:
        print(lab.logs())
        raise
    yield lab
    print(lab.logs())  # shown by pytest only when the test failed
