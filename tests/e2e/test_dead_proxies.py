"""Two of three proxies really dead: with candidate rows no request fails, and the survivor
serves every flow; when one comes back its rows return. ``table_semantics: upstream`` is
the control: rows whose primary and secondary are both dead keep sending there (upstream
glb-director issue #77), and requests fail.

Runs the real lab (namespaces, BIRD, ExaBGP, XDP directors, eBPF proxies, HTTP services)
under glb_agent.lab.run; 64 clients request each VIP (IPv4 and IPv6) through both directors.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glb_agent.lab import run as lab
from tests.e2e import krows_support as k
from tests.support.netns import can_run

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

DIRECTORS = ["d1", "d2"]


@pytest.fixture
def fleet(tmp_path: Path):
    if why := can_run():
        pytest.skip(why)
    cfg = tmp_path / "glb.yml"
    cfg.write_text(k.fleet_text())
    try:
        lab.up(cfg)
        yield cfg
    finally:
        lab.down(quiet=True)


def _demo(cfg: Path) -> dict:
    report = lab.demo(cfg, requests=64)
    served = dict(report["proxies"])
    for name, n in (report["ipv6"] or {}).get("proxies", {}).items():
        served[name] = served.get(name, 0) + n
    return {"failures": report["failures"], "served": served,
            "requests": 64 * (2 if report["ipv6"] else 1)}


def test_two_dead_proxies_fail_no_request(fleet: Path, capsys) -> None:
    cfg = fleet
    first = _demo(cfg)
    assert first["failures"] == 0 and set(first["served"]) == {"p1", "p2", "p3"}

    k.kill_service("p1")
    k.kill_service("p2")
    for p in ("p1", "p2"):
        k.wait_health(DIRECTORS, p, healthy=False)
    dead = _demo(cfg)
    # every flow to the survivor: the candidates of every row include p3 (K capped at 3)
    assert dead["failures"] == 0, dead
    assert set(dead["served"]) == {"p3"}, dead
    for d in DIRECTORS:
        assert k.backend(d, "p3")["primary_share"] == 1.0

    lab.start_proxy(cfg, "p1", "glb-lab-p1")
    k.wait_health(DIRECTORS, "p1", healthy=True)
    back = _demo(cfg)
    assert back["failures"] == 0 and set(back["served"]) == {"p1", "p3"}, back
    for d in DIRECTORS:
        # its own third of the rows, plus half of dead p2's (rows ranking p2 then p1)
        assert 0.45 < k.backend(d, "p1")["primary_share"] < 0.55

    # --- control: the same failure with upstream's two columns and swap rule -----------
    k.kill_service("p1")
    k.wait_health(DIRECTORS, "p1", healthy=False)
    cfg.write_text(k.set_fleet_keys(cfg.read_text(), table_semantics="upstream"))
    k.apply(cfg, DIRECTORS, "--force")  # the semantics change itself moves rows
    lab.wait_for(lambda: all(s["semantics"] == "upstream" for d in DIRECTORS
                             for s in k.status(d).get("services", [])), 30, "upstream rows live")
    control = _demo(cfg)
    with capsys.disabled():
        print(f"\ntwo of three proxies dead: candidates rows {dead['failures']}/{dead['requests']} failed "
              f"(served by {dead['served']}); upstream rows {control['failures']}/{control['requests']} "
              f"failed (served by {control['served']})")
    # rows ranking p1 and p2 first and second (~1/3 of them) still send to a dead proxy
    assert control["failures"] > control["requests"] // 6, control
