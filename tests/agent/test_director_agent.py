"""The director agent daemon end to end: real XDP program, real HTTP backends, real files.

Measures (printed): seconds from a backend failure to the swapped table that moves its
rows, and ``apply`` time from edit to new table live.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glb_agent.dataplane.director import director_ready
from tests.support.netns import Lab, can_run

pytestmark = [pytest.mark.netns, pytest.mark.bpf]
AGENT = str(Path(sys.executable).with_name("glb-agent"))

CONFIG = """\
fleet:
  name: t
  secret: 0123456789abcdef-secret
bgp:
  local_asn: 65100
  peers: [{name: r1, address: 198.18.0.1, asn: 65000}]
directors:
  - {name: d1, address: 198.18.0.11, interface: eth0, gateway_mac: "02:00:00:00:00:01"}
proxies:
  - {name: p1, address: 198.18.0.21, interface: eth0}
  - {name: p2, address: 198.18.0.22, interface: eth0}
services:
  - name: web
    vips: [203.0.113.10]
    ports: [80]
    healthcheck: {http: {port: 80, path: /healthz}}
    backends:
      - {address: 198.18.0.21, state: P1STATE}
      - {address: 198.18.0.22}
"""


def status(state: Path) -> dict | None:
    try:
        return json.loads((state / "director-status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def backend(st: dict, address: str) -> dict:
    return next(b for b in st["services"][0]["backends"] if b["address"] == address)


def wait(predicate, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def env(tmp_path: Path):
    if why := can_run():
        pytest.skip(why)
    with Lab() as lab:
        d, p = lab.ns("d"), lab.ns("p")
        lab.link(d, "eth0", p, "eth0", ["198.18.0.11/24"], ["198.18.0.21/24", "198.18.0.22/24"])
        down = tmp_path / "p2-down"
        for addr, extra in (("198.18.0.21", []), ("198.18.0.22", ["--down-file", str(down)])):
            lab.start(sys.executable, "-m", "glb_agent.lab.httpd", "--name", addr, "--bind", addr, *extra, ns=p)
        cfg = tmp_path / "glb.yml"
        cfg.write_text(CONFIG.replace("P1STATE", "active"))
        state = tmp_path / "state"
        pin = Path(f"/sys/fs/bpf/glb-test-{lab.tag}")
        log = open(tmp_path / "agent.log", "w")  # noqa: SIM115 - the child owns it
        agent = lab.start("nsenter", f"--net=/run/netns/{d}", AGENT, "run", "--config", str(cfg),
                          "--name", "d1", "--pin-dir", str(pin), "--health-file", str(tmp_path / "health.json"),
                          "--state-dir", str(state), "--metrics-port", "0", ns=None, stdout=log, stderr=log)
        try:
            yield {"lab": lab, "d": d, "cfg": cfg, "state": state, "down": down, "agent": agent, "pin": pin,
                   "log": tmp_path / "agent.log"}
        finally:
            cfg.write_text(CONFIG.replace("P1STATE", "active"))  # the test ends on a broken YAML
            stop = subprocess.run(["nsenter", f"--net=/run/netns/{d}", AGENT, "director", "stop", str(cfg),
                                   "--name", "d1", "--pin-dir", str(pin)], capture_output=True, text=True)
            assert stop.returncode == 0 and not pin.exists(), stop.stdout + stop.stderr


def test_agent_swaps_tables_on_health_and_apply(env) -> None:
    state, cfg = env["state"], env["cfg"]
    wait(lambda: (st := status(state)) and all(b["healthy"] for b in st["services"][0]["backends"]), 20,
         "first tables")
    st = status(state)
    assert 0.4 < backend(st, "198.18.0.22")["primary_share"] < 0.6

    # a backend fails: its rows move to the secondaries within fall * interval (+ timeout)
    t0 = time.monotonic()
    env["down"].touch()
    wait(lambda: backend(status(state), "198.18.0.22")["primary_share"] == 0.0, 5, "rows to move")
    failover = time.monotonic() - t0
    assert backend(status(state), "198.18.0.22")["healthy"] is False
    os.unlink(env["down"])
    wait(lambda: backend(status(state), "198.18.0.22")["primary_share"] > 0.4, 5, "rows to return")

    # apply: an edit goes live without detaching; the XDP program stays the same
    swapped = status(state)["swapped_at"]
    cfg.write_text(CONFIG.replace("P1STATE", "draining"))
    t0 = time.monotonic()
    done = subprocess.run([AGENT, "apply", "--config", str(cfg), "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=60)
    apply_s = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    assert "198.18.0.21" in done.stdout  # the diff names the backend losing rows
    st = status(state)
    assert st["swapped_at"] > swapped and backend(st, "198.18.0.21")["state"] == "draining"
    assert backend(st, "198.18.0.21")["primary_share"] == 0.0

    # an edit that puts rows at risk (p2 removed while it takes every new flow): refused,
    # nothing changes; with --force it goes live and status counts the rows it put at risk
    swapped = st["swapped_at"]
    cfg.write_text(CONFIG.replace("P1STATE", "draining").replace("      - {address: 198.18.0.22}\n", ""))
    refused = subprocess.run([AGENT, "apply", "--config", str(cfg), "--state-dir", str(state)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "rows at risk" in refused.stderr, refused.stdout + refused.stderr
    assert status(state)["swapped_at"] == swapped
    forced = subprocess.run([AGENT, "apply", "--config", str(cfg), "--state-dir", str(state), "--force"],
                            capture_output=True, text=True, timeout=60)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    st = status(state)
    assert st["services"][0]["rows_at_risk"] == 65536 and st["swapped_at"] > swapped, st

    # a bad YAML: exit 2, the agent keeps the last good tables
    swapped = st["swapped_at"]
    cfg.write_text(CONFIG.replace("P1STATE", "retired"))
    bad = subprocess.run([AGENT, "apply", "--config", str(cfg), "--state-dir", str(state)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and f"{cfg}:" in bad.stderr
    assert status(state)["swapped_at"] == swapped and env["agent"].poll() is None

    # SIGTERM: the agent exits, the pinned program keeps forwarding
    env["agent"].send_signal(signal.SIGTERM)
    assert env["agent"].wait(timeout=10) == 0
    ready = subprocess.run(["nsenter", f"--net=/run/netns/{env['d']}", sys.executable, "-c",
                            "import sys; from glb_agent.dataplane.director import director_ready; "
                            f"ok, why = director_ready('eth0', __import__('pathlib').Path('{env['pin']}')); "
                            "print(why); sys.exit(0 if ok else 1)"], capture_output=True, text=True)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    print(f"\nbackend failure -> rows moved: {failover:.2f}s; apply edit -> live: {apply_s:.2f}s")
    assert director_ready  # imported for the subprocess check above
