"""``glb-agent apply`` of a glb.yml that changes ``directors[].dataplane``: the agent switches
data planes drained, and puts the old one back when the new one fails; an agent started on a
changed glb.yml adopts the data plane still forwarding and switches the same way.

A real agent in a namespace (XDP director natively on a veth, DPDK director on af_xdp over
the same veth, real HTTP backends), without ExaBGP: the switch then has nothing to withdraw
and says so, no VIP traffic arrives, so what is tested here is the data-plane side: the
order of stop and start, the readiness wait, the rollback, and who owns the drain flag.
Under load, with BGP and a router, see tests/e2e/test_dataplane_switch.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glb_agent.agent.director import SWITCH_OWNER, read_status
from glb_agent.bgp.state import DrainState
from glb_agent.config import load_config
from glb_agent.config.hosts import this_director
from glb_agent.dataplane.director import director_ready
from glb_agent.dataplane.director_config import director_settings
from glb_agent.dataplane.dpdk import DpdkDirector, dpdk_options
from glb_agent.lab import netns
from tests.dpdk.harness import af_xdp_unavailable
from tests.dpdk.test_dpdk_agent_run import AGENT, config
from tests.support.netns import Lab, wait_for

pytestmark = [pytest.mark.dpdk, pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

XDP = config("xdp")
BROKEN_DPDK = config(dpdk={"eal_args": ["--no-such-eal-option"]})


def _apply(cfg: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENT, "apply", "--config", str(cfg), "--state-dir", str(state), "--timeout", "60"],
                          capture_output=True, text=True, timeout=90)


def test_switch_and_rollback(tmp_path: Path) -> None:
    if why := af_xdp_unavailable():
        pytest.skip(why)
    cfg, state = tmp_path / "glb.yml", tmp_path / "state"
    cfg.write_text(XDP)
    loaded = load_config(cfg)
    dpdk = DpdkDirector(director_settings(loaded, "d1", resolve=False),
                        dpdk_options(this_director(loaded, "d1", strict=True), state))
    # A switch cut short by a crash left its drain flag: the next start clears it (never an
    # operator's flag, see below).
    state.mkdir()
    DrainState(state).drain("data-plane switch xdp -> dpdk", owner=SWITCH_OWNER)
    with Lab() as lab:
        d, p = lab.ns("sd"), lab.ns("sp")
        lab.link(d, "eth0", p, "eth0", ["198.18.0.11/24"], ["198.18.0.21/24", "198.18.0.22/24"])
        for addr in ("198.18.0.21", "198.18.0.22"):
            lab.start(sys.executable, "-m", "glb_agent.lab.httpd", "--name", addr, "--bind", addr, ns=p)
        pins = Path(f"/sys/fs/bpf/glb-test-{lab.tag}")
        log = open(tmp_path / "agent.log", "w")  # noqa: SIM115 - the child owns it
        cmd = ["nsenter", f"--net=/run/netns/{d}", AGENT, "run", "--config", str(cfg), "--name", "d1",
               "--pin-dir", str(pins), "--health-file", str(tmp_path / "health.json"),
               "--state-dir", str(state), "--metrics-port", "0"]
        agent = lab.start(*cmd, ns=None, stdout=log, stderr=log)

        def xdp_ready() -> bool:
            with netns.inside(d):
                return director_ready("eth0", pins)[0]

        try:
            wait_for(lambda: (st := read_status(state)) is not None and st.get("dataplane") == "xdp", 60, what="XDP tables")
            wait_for(lambda: DrainState(state).current() is None, 10, what="the stale switch flag cleared")
            assert xdp_ready()

            # The DPDK director cannot start (bad EAL option): the XDP director comes back with
            # the old tables, the agent keeps the old glb.yml, apply says why and exits 1.
            cfg.write_text(BROKEN_DPDK)
            bad = _apply(cfg, state)
            assert bad.returncode == 1, bad.stdout + bad.stderr
            assert "data-plane switch xdp -> dpdk refused" in bad.stderr and "DPDK director exited" in bad.stderr
            st = read_status(state)
            assert st["dataplane"] == "xdp" and st["switch"]["state"] == "failed", st["switch"]
            assert xdp_ready() and not dpdk.ready()[0]
            assert DrainState(state).current() is None

            # XDP -> DPDK.
            cfg.write_text(config())
            good = _apply(cfg, state)
            assert good.returncode == 0, good.stdout + good.stderr
            assert "data plane xdp -> dpdk" in good.stdout
            st = read_status(state)
            assert st["dataplane"] == "dpdk" and st["switch"]["state"] == "done"
            ok, why = dpdk.ready()
            assert ok, why
            assert not xdp_ready()
            assert DrainState(state).current() is None

            # An operator drained the director first: the switch back to XDP leaves it drained.
            env = {**os.environ, "GLB_STATE_DIR": str(state)}
            subprocess.run([AGENT, "drain", "--reason", "maintenance"], env=env, check=True, capture_output=True)
            cfg.write_text(XDP)
            back = _apply(cfg, state)
            assert back.returncode == 0, back.stdout + back.stderr
            assert "left drained" in back.stdout
            st = read_status(state)
            assert st["dataplane"] == "xdp" and st["switch"]["state"] == "done"
            assert xdp_ready() and not dpdk.ready()[0]
            assert DrainState(state).current()["reason"] == "maintenance"
            events = [json.loads(line)["event"] for line in (tmp_path / "agent.log").read_text().splitlines()
                      if line.startswith("{")]
            assert events.count("dataplane_switch_done") == 2 and "dataplane_switch_failed" in events
            assert "dataplane_switch_recovered" in events

            # glb.yml changed while no agent ran (the role restarts the agent after installing
            # the DPDK unit): the new agent adopts the XDP director still forwarding, then
            # switches drained, as a reload would.
            DrainState(state).undrain()
            agent.terminate()
            agent.wait(timeout=30)
            assert xdp_ready()
            cfg.write_text(config())
            agent = lab.start(*cmd, ns=None, stdout=log, stderr=log)
            wait_for(lambda: (st := read_status(state)) is not None and st.get("switch", {}).get("state") == "done"
                     and st["dataplane"] == "dpdk", 60, what="the switch at start")
            ok, why = dpdk.ready()
            assert ok, why
            assert not xdp_ready() and DrainState(state).current() is None
            events = [json.loads(line)["event"] for line in (tmp_path / "agent.log").read_text().splitlines()
                      if line.startswith("{")]
            assert "dataplane_mismatch" in events and events.count("dataplane_switch_done") == 3
        finally:
            agent.terminate()
            agent.wait(timeout=30)
            dpdk.stop()
            with netns.inside(d):
                subprocess.run([AGENT, "director", "stop", str(tmp_path / "glb.yml"), "--name", "d1",
                                "--pin-dir", str(pins)], capture_output=True, timeout=60)
