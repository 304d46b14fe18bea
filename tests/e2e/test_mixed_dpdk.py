"""A mixed fleet: d1 on the XDP director, d2 on the DPDK director (af_xdp over its veth,
GLB_LAB_DPDK=d2). Both compute the same tables from the same glb.yml, so a flow reaches the
same proxy whichever director the router's ECMP picks: long-lived connections opened across
both survive d1 dying (everything moves to the DPDK director) and then d2's agent dying
while d1 is back (everything moves back to XDP; the DPDK process keeps forwarding without
its agent until its route is withdrawn).

Run under ``flock /tmp/glb-lab.lock`` like every lab test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glb_agent.lab import run as lab
from tests.dpdk.harness import PMD_DIR, dpdk_unavailable
from tests.e2e.test_consistency import VIP, Run, clean_lab, fleet  # noqa: F401 - clean_lab is a fixture

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow, pytest.mark.dpdk]


def _dpdk_stats() -> dict:
    try:
        return json.loads((lab.RUN_DIR / "d2" / "dpdk" / "stats.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _forwarded(st: dict) -> int:
    return int(st.get("counters", {}).get("web", {}).get("forwarded_packets", 0))


def test_mixed_xdp_dpdk_fleet_keeps_connections(clean_lab, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: F811
    if why := dpdk_unavailable():
        pytest.skip(why)
    if not (PMD_DIR / "librte_net_af_xdp.so").exists():
        pytest.skip("the net_af_xdp PMD is not installed")
    monkeypatch.setenv(lab.DPDK_ENV, "d2")
    run = Run(tmp_path, "mixed")
    run.write(fleet())
    lab.up(run.cfg, directors=["d1", "d2"], proxies=["p1", "p2", "p3"])
    st = _dpdk_stats()
    assert st.get("loaded"), "d2 forwards with the DPDK director"
    run.start_keeper()
    report = run.record("0 start: d1 XDP + d2 DPDK, p1 p2 p3", settle=1)
    assert _forwarded(_dpdk_stats()) > 0, "ECMP sends some flows through the DPDK director"

    lab.stop_director("d1", how="kill")
    lab.wait_for(lambda: "198.18.0.11" not in lab.nexthops(VIP), 20, "d1's path dropped")
    before = _forwarded(_dpdk_stats())
    report = run.record("1 SIGKILL d1: every flow via d2 (DPDK)")
    assert _forwarded(_dpdk_stats()) > before

    lab.start_director(run.cfg, "d1", "glb-lab-d1")
    lab.wait_for(lambda: "198.18.0.11" in lab.nexthops(VIP), 60, "d1 announced again")
    lab.stop_director("d2", how="kill")
    lab.wait_for(lambda: "198.18.0.12" not in lab.nexthops(VIP), 20, "d2's path dropped")
    report = run.record("2 d1 back, SIGKILL d2's agent: every flow via d1 (XDP)")
    final = run.stop()
    with capsys.disabled():
        print("\n" + run.table())
    broken = [c for c in final["connections"] if c["error"]]
    assert not broken, f"{len(broken)} connections broke: {broken[:3]}"
    assert report["alive"] == final["alive"] == 200
    assert all(row[4] == "16/16" for row in run.rows), run.table()
