"""The director agent daemon end to end: real XDP program, real HTTP backends, real files.

Measures (printed): seconds from a backend failure to the swapped table that moves its
rows, and ``apply`` time from edit to new table live.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glb_agent.agent.director import read_status
from glb_agent.dataplane.director import director_ready
from tests.support.fleet import director_address, fleet_yaml, proxy_address
from tests.support.netns import Lab, can_run, sh, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.bpf]
AGENT = str(Path(sys.executable).with_name("glb-agent"))

P1, P2 = proxy_address(1), proxy_address(2)


def config(p1: str = "active", *, with_p2: bool = True, directors: int = 1) -> str:
    """The fleet under test: p1 in state ``p1``, p2 (optional) active, HTTP health checks."""
    return fleet_yaml({P1: p1, **({P2: "active"} if with_p2 else {})}, proxies=2, directors=directors,
                      healthcheck={"http": {"port": 80, "path": "/healthz"}})


def backend(st: dict, address: str) -> dict:
    return next(b for b in st["services"][0]["backends"] if b["address"] == address)


@contextlib.contextmanager
def agent_env(tmp_path: Path, name: str | None = "d1", directors: int = 1) -> Iterator[dict]:
    """A director namespace (d1's address) and a proxy namespace with two HTTP backends
    (p2 fails its check while ``down`` exists); the agent runs in the director's namespace,
    as ``--name name`` or, with None, finding its entry by its local address."""
    if why := can_run():
        pytest.skip(why)
    with Lab() as lab:
        d, p = lab.ns("d"), lab.ns("p")
        lab.link(d, "eth0", p, "eth0", [f"{director_address(1)}/24"], [f"{P1}/24", f"{P2}/24"])
        down = tmp_path / "p2-down"
        for addr, extra in ((P1, []), (P2, ["--down-file", str(down)])):
            lab.start(sys.executable, "-m", "glb_agent.lab.httpd", "--name", addr, "--bind", addr, *extra, ns=p)
        cfg = tmp_path / "glb.yml"
        cfg.write_text(config(directors=directors))
        state = tmp_path / "state"
        pin = Path(f"/sys/fs/bpf/glb-test-{lab.tag}")
        log = open(tmp_path / "agent.log", "w")  # noqa: SIM115 - the child owns it
        agent = lab.start("nsenter", f"--net=/run/netns/{d}", AGENT, "run", "--config", str(cfg),
                          *(["--name", name] if name else []), "--pin-dir", str(pin),
                          "--health-file", str(tmp_path / "health.json"),
                          "--state-dir", str(state), "--metrics-port", "0", ns=None, stdout=log, stderr=log)
        try:
            yield {"lab": lab, "d": d, "cfg": cfg, "state": state, "down": down, "agent": agent, "pin": pin,
                   "log": tmp_path / "agent.log"}
        finally:
            cfg.write_text(config(directors=directors))  # the test ends on a broken YAML
            stop = subprocess.run(["nsenter", f"--net=/run/netns/{d}", AGENT, "director", "stop", str(cfg),
                                   "--name", "d1", "--pin-dir", str(pin)], capture_output=True, text=True)
            assert stop.returncode == 0 and not pin.exists(), stop.stdout + stop.stderr


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict]:
    with agent_env(tmp_path) as e:
        yield e


def test_agent_swaps_tables_on_health_and_apply(env) -> None:
    state, cfg = env["state"], env["cfg"]
    wait_for(lambda: (st := read_status(state)) and all(b["healthy"] for b in st["services"][0]["backends"]), 20,
             what="first tables")
    st = read_status(state)
    assert 0.4 < backend(st, P2)["primary_share"] < 0.6

    # a backend fails: its rows move to the secondaries within fall * interval (+ timeout)
    t0 = time.monotonic()
    env["down"].touch()
    wait_for(lambda: backend(read_status(state), P2)["primary_share"] == 0.0, 5, 0.02, "rows to move")
    failover = time.monotonic() - t0
    assert backend(read_status(state), P2)["healthy"] is False
    os.unlink(env["down"])
    wait_for(lambda: backend(read_status(state), P2)["primary_share"] > 0.4, 5, what="rows to return")

    # apply: an edit goes live without detaching; the XDP program stays the same
    swapped = read_status(state)["swapped_at"]
    cfg.write_text(config("draining"))
    t0 = time.monotonic()
    done = subprocess.run([AGENT, "apply", "--config", str(cfg), "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=60)
    apply_s = time.monotonic() - t0
    assert done.returncode == 0, done.stdout + done.stderr
    assert P1 in done.stdout  # the diff names the backend losing rows
    st = read_status(state)
    assert st["swapped_at"] > swapped and backend(st, P1)["state"] == "draining"
    assert backend(st, P1)["primary_share"] == 0.0

    # an edit that puts rows at risk (p2 removed while it takes every new flow): refused,
    # nothing changes; with --force it goes live and status counts the rows it put at risk
    swapped = st["swapped_at"]
    cfg.write_text(config("draining", with_p2=False))
    refused = subprocess.run([AGENT, "apply", "--config", str(cfg), "--state-dir", str(state)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "rows at risk" in refused.stderr, refused.stdout + refused.stderr
    assert read_status(state)["swapped_at"] == swapped
    forced = subprocess.run([AGENT, "apply", "--config", str(cfg), "--state-dir", str(state), "--force"],
                            capture_output=True, text=True, timeout=60)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    st = read_status(state)
    assert st["services"][0]["rows_at_risk"] == 65536 and st["swapped_at"] > swapped, st

    # a bad YAML: exit 2, the agent keeps the last good tables
    swapped = st["swapped_at"]
    cfg.write_text(config("retired"))
    bad = subprocess.run([AGENT, "apply", "--config", str(cfg), "--state-dir", str(state)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and f"{cfg}:" in bad.stderr
    assert read_status(state)["swapped_at"] == swapped and env["agent"].poll() is None

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


def test_agent_without_name_resolves_its_host_at_start_and_reload_only(tmp_path: Path) -> None:
    """Without --name the agent finds its directors[] entry by its local addresses once, at
    start and at each reload; a table swap does not look again. Shown by making the host
    ambiguous (d2's address local too) while it runs: health swaps go on, a reload is
    rejected with the resolver's message and keeps the tables, and goes through once the
    host is unambiguous again."""
    with agent_env(tmp_path, name=None, directors=2) as env:
        state, d = env["state"], env["d"]
        wait_for(lambda: (st := read_status(state)) and all(b["healthy"] for b in st["services"][0]["backends"]),
                 20, what="first tables")
        assert read_status(state)["director"] == "d1"
        sh("ip", "addr", "add", f"{director_address(2)}/32", "dev", "lo", ns=d)

        env["down"].touch()
        wait_for(lambda: backend(read_status(state), P2)["primary_share"] == 0.0, 5, what="rows to move")
        assert env["agent"].poll() is None

        swapped = read_status(state)["swapped_at"]
        env["agent"].send_signal(signal.SIGHUP)
        wait_for(lambda: "reload_rejected" in env["log"].read_text(), 10, what="the reload to be rejected")
        assert "cannot tell which director this host is" in env["log"].read_text()
        assert read_status(state)["swapped_at"] == swapped and env["agent"].poll() is None

        sh("ip", "addr", "del", f"{director_address(2)}/32", "dev", "lo", ns=d)
        env["agent"].send_signal(signal.SIGHUP)
        wait_for(lambda: "reload_applied" in env["log"].read_text(), 10, what="the reload to go through")
        assert read_status(state)["swapped_at"] > swapped
        assert read_status(state)["director"] == "d1"
