"""A director switching data planes under load: XDP -> DPDK and back, while long-lived
connections and a stream of new ones go through the lab.

The switch is what an operator does on one host (``glb-agent lab switch d1 dpdk``: edit
glb.yml's ``directors[].dataplane``, ``glb-agent apply``), and the agent does it drained
(glb_agent/agent/director.py): the feed withdraws d1's VIPs, the router sends every flow to
d2 (same tables, so to the same proxy), d1 waits until no VIP packet arrives, stops one data
plane, starts the other with the same tables, waits until it is ready and re-announces;
ECMP then moves some flows back to d1, now on the other data plane, again to the same proxy.

Counted: connections broken (must be 0), new connections opened every 50 ms during the whole
run (all must succeed), the longest gap between two successful exchanges of any connection,
and the agent's own timings for each switch. CI runs two switches with 200 connections
(~1 minute); ``make e2e-switch`` runs more connections and switches of both directors
(GLB_E2E_CONNS, GLB_E2E_SWITCHES). Run under ``flock /tmp/glb-lab.lock`` like every lab test.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from glb_agent.lab import run as lab
from tests.dpdk.harness import PMD_DIR, dpdk_unavailable
from tests.e2e.test_consistency import VIP, Run, fleet

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow, pytest.mark.dpdk]

CONNS = int(os.environ.get("GLB_E2E_CONNS", "200"))
# director:dataplane steps, in order
SWITCHES = [tuple(step.split(":")) for step in os.environ.get("GLB_E2E_SWITCHES", "d1:dpdk,d1:xdp").split(",")]
ADDRESS = {"d1": "198.18.0.11", "d2": "198.18.0.12"}
NEW_EVERY = 0.05  # seconds between new connections
# A gap above this means lost packets (TCP retransmits); exchanges run every 0.3 s, and a busy
# 2-core host adds a few hundred ms at worst (measured: see docs/director-dataplane.md).
STALL_LIMIT = 2.0
# A new connection that takes 1 s or more lost its SYN (TCP's initial retransmission timeout is
# 1 s). Switching without the drain loses some (measured: slowest 1.02 s); drained, none.
SYN_RTO = 1.0


def _status(name: str) -> dict:
    try:
        return json.loads((lab.RUN_DIR / name / "director-status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _vip_packets(name: str) -> int:
    """Packets the director forwarded, read from whichever data plane it runs (the lab's
    ``glb-agent director status`` with the running YAML, as ``lab demo`` counts them)."""
    config = lab.RUN_DIR / "glb.yml"
    return lab._director_counters(lab.plan(lab.load_config(config)), config).get(name, 0)


def test_director_switches_dataplane_under_load(lab_ok, tmp_path: Path, monkeypatch, capsys) -> None:
    if why := dpdk_unavailable():
        pytest.skip(why)
    if not (PMD_DIR / "librte_net_af_xdp.so").exists():
        pytest.skip("the net_af_xdp PMD is not installed")
    monkeypatch.delenv(lab.DPDK_ENV, raising=False)  # both directors start on XDP
    run = Run(tmp_path, "switch")
    run.write(fleet())
    lab.up(run.cfg, directors=["d1", "d2"], proxies=["p1", "p2", "p3"])
    run.start_keeper(CONNS, extra=("--requests-every", str(NEW_EVERY),
                                   "--request-sources", ",".join(run.sources[48:112])))
    run.record("0 start: d1 XDP, d2 XDP", settle=1)

    timings = []
    for step, (name, plane) in enumerate(SWITCHES, 1):
        was = _status(name).get("dataplane")
        started = time.monotonic()
        lab.switch_dataplane(name, plane)
        took = time.monotonic() - started
        st = _status(name)
        switch = st.get("switch", {})
        assert st.get("dataplane") == plane and switch.get("state") == "done", switch
        # The feed's announcement is confirmed by ExaBGP; the router installs it a moment later.
        lab.wait_for(lambda n=name: ADDRESS[n] in lab.nexthops(VIP), 5, f"{name} announced again on {plane}")
        before = _vip_packets(name)
        run.record(f"{step} {name} {was} -> {plane} (drained switch)")
        # ECMP sends flows to the director again: the new data plane really forwards them.
        lab.wait_for(lambda n=name, b=before: _vip_packets(n) > b, 10, f"{name} forwarding on {plane}")
        timings.append((f"{name} {was} -> {plane}", took, switch))

    final = run.stop()
    broken = [c for c in final["connections"] if c["error"]]
    stall = max(c["max_gap"] for c in final["connections"])
    requests = final["requests"]
    with capsys.disabled():
        print("\n" + run.table())
        for label, took, sw in timings:
            print(f"  switch {label}: apply {took:.2f}s; withdrawn {sw['withdrawn_s']:.2f}s, last VIP packet "
                  f"{sw['traffic_stopped_s']:.2f}s, old stopped {sw['idle_s']:.2f}s, new ready after "
                  f"{sw['dark_s']:.2f}s, announced again {sw['seconds']:.2f}s")
        print(f"  {CONNS} long-lived connections: {len(broken)} broken, longest stall {stall:.2f}s")
        print(f"  new connections every {NEW_EVERY * 1000:.0f} ms: {requests['ok']} ok, {requests['failed']} "
              f"failed, slowest {requests['slowest']:.2f}s {requests['errors'][:3]}")
    assert not broken, f"{len(broken)} connections broke: {broken[:3]}"
    assert final["alive"] == CONNS
    assert requests["failed"] == 0 and requests["ok"] > 0, requests
    assert requests["slowest"] < SYN_RTO, f"a new connection took {requests['slowest']:.2f}s: its SYN was lost"
    assert all(row[4] == "16/16" for row in run.rows), run.table()
    assert stall < STALL_LIMIT, f"a connection stalled {stall:.2f}s (packets lost?)"
