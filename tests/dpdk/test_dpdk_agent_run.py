"""``glb-agent run`` with ``directors[].dataplane: dpdk``: the agent starts and feeds the DPDK
director on its interface (af_xdp + steering), in a namespace, with real HTTP backends.

The director's own traffic shares the NIC with the DPDK director: the agent's health checks
to the proxies go through the kernel while VIP traffic goes to DPDK. A backend failure swaps
the tables (the DPDK generation advances), VIP traffic is forwarded, the BGP feed's readiness
check says ready, and a restarted agent adopts the running process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from glb_agent.agent.director import read_status
from glb_agent.config import load_config
from glb_agent.config.hosts import this_director
from glb_agent.dataplane.director_config import director_settings
from glb_agent.dataplane.dpdk import DpdkDirector, dpdk_options
from glb_agent.lab import netns
from tests.dpdk.harness import af_xdp_unavailable
from tests.support.fleet import fleet_yaml
from tests.support.netns import Lab, wait_for

pytestmark = [pytest.mark.dpdk, pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]
AGENT = str(Path(sys.executable).with_name("glb-agent"))

def config(dataplane: str = "dpdk", dpdk: dict | None = None) -> str:
    """d1 on ``dataplane`` (DPDK settings ``dpdk``, by default one lcore and 256 MB, no
    hugepages needed) in front of p1 and p2, checked over HTTP."""
    return fleet_yaml(2, director={"dataplane": dataplane, "dpdk": dpdk or {"lcores": "1", "memory_mb": 256}},
                      healthcheck={"http": {"port": 80, "path": "/healthz"}})


def test_agent_runs_the_dpdk_director(tmp_path: Path) -> None:
    if why := af_xdp_unavailable():
        pytest.skip(why)
    cfg = tmp_path / "glb.yml"
    cfg.write_text(config())
    state = tmp_path / "state"
    loaded = load_config(cfg)
    me = this_director(loaded, "d1", strict=True)
    dpdk = DpdkDirector(director_settings(loaded, "d1", resolve=False), dpdk_options(me, state))
    with Lab() as lab:
        d, p = lab.ns("dd"), lab.ns("dp")
        lab.link(d, "eth0", p, "eth0", ["198.18.0.11/24"], ["198.18.0.21/24", "198.18.0.22/24"])
        netns.run("ip", "route", "add", "203.0.113.0/24", "via", "198.18.0.11", ns=p)
        down = tmp_path / "p2-down"
        for addr, extra in (("198.18.0.21", []), ("198.18.0.22", ["--down-file", str(down)])):
            lab.start(sys.executable, "-m", "glb_agent.lab.httpd", "--name", addr, "--bind", addr, *extra, ns=p)
        log = open(tmp_path / "agent.log", "w")  # noqa: SIM115 - the child owns it
        cmd = ["nsenter", f"--net=/run/netns/{d}", AGENT, "run", "--config", str(cfg), "--name", "d1",
               "--pin-dir", f"/sys/fs/bpf/glb-test-{lab.tag}", "--health-file", str(tmp_path / "health.json"),
               "--state-dir", str(state)]
        agent = lab.start(*cmd, ns=None, stdout=log, stderr=log)
        try:
            wait_for(lambda: (st := read_status(state)) is not None
                     and all(b["healthy"] for b in st["services"][0]["backends"]), 60, what="first tables, all healthy")
            first = dpdk.stats()
            assert first["loaded"] and first["generation"] >= 1 and set(first["counters"]) == {"web", "_unmatched"}
            ok, why = dpdk.ready()
            assert ok, why
            assert first["counters"]["_unmatched"]["pass_not_vip_packets"] == 0, "health checks stay in the kernel"

            # A backend fails: the agent swaps the tables, the DPDK director loads them.
            down.touch()
            wait_for(lambda: dpdk.stats().get("generation", 0) > first["generation"], 20, what="a reload")

            # VIP traffic from the router side is forwarded by DPDK.
            before = dpdk.stats()["counters"]["web"]["forwarded_packets"]
            with netns.inside(p):
                for port in range(40000, 40010):
                    s = socket.socket()
                    s.bind(("198.18.0.21", port))
                    s.settimeout(0.2)
                    try:
                        s.connect(("203.0.113.10", 80))  # the SYN goes to DPDK; nobody answers here
                    except OSError:
                        pass
                    finally:
                        s.close()
            wait_for(lambda: dpdk.stats()["counters"]["web"]["forwarded_packets"] >= before + 10, 10, what="forwarding")

            # The agent restarts: the process keeps forwarding and is adopted.
            agent.terminate()
            agent.wait(timeout=30)
            pid = dpdk.stats()["pid"]
            agent = lab.start(*cmd, ns=None, stdout=log, stderr=log)
            wait_for(lambda: "adopted" in (tmp_path / "agent.log").read_text(), 30, what="adoption")
            assert dpdk.stats()["pid"] == pid

            # The CLI's director verbs drive the same process.
            env = {**os.environ, "GLB_STATE_DIR": str(state)}
            st = subprocess.run([AGENT, "director", "status", str(cfg), "--name", "d1", "--json"], env=env,
                                capture_output=True, text=True, timeout=60)
            assert st.returncode == 0, st.stdout + st.stderr
            info = json.loads(st.stdout)
            assert info["dataplane"] == "dpdk" and info["counters"]["web"]["forwarded_packets"] >= 10
            agent.terminate()
            agent.wait(timeout=30)
            stop = subprocess.run([AGENT, "director", "stop", str(cfg), "--name", "d1"], env=env,
                                  capture_output=True, text=True, timeout=60)
            assert stop.returncode == 0 and "director stopped" in stop.stdout, stop.stdout + stop.stderr
            assert dpdk.ready()[0] is False
        finally:
            agent.terminate()
            subprocess.run(["sleep", "0.5"], check=False)
            dpdk.stop()
