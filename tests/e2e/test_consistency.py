"""The connection-consistency proof: 200 long-lived TCP connections through the VIP survive
every fleet change GLB is built for, and a control run with plain router ECMP to the proxies
breaks on the same steps.

Runs the real lab (namespaces, BIRD, ExaBGP, XDP directors, eBPF proxies) in-process through
glb_agent.lab.run, and prints a table: step, alive, broken, closed on purpose, new connections
served.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glb_agent.lab import netns
from glb_agent.lab import run as lab
from glb_agent.lab.network import build
from glb_agent.lab.topology import CLIENT_NS, plan
from tests.support.netns import can_run

pytestmark = [pytest.mark.netns, pytest.mark.bpf, pytest.mark.slow]

N_CONNS = 200
VIP = "203.0.113.10"
AGENT = str(Path(sys.executable).with_name("glb-agent"))

LAB_YML = Path(__file__).resolve().parents[2] / "inventories/lab/group_vars/all/glb.yml"
# Written to tmp below: the lab's TCP-MD5 password file must stay findable from there.
BASE = LAB_YML.read_text().replace("password_file: bgp-r1.md5", f"password_file: {LAB_YML.parent}/bgp-r1.md5")
# The e2e fleet: the lab plus a third director and a fourth proxy that join later.
FLEET = BASE.replace(
    '''  - name: d2
    address: 198.18.0.12
    interface: eth0
    gateway_mac: "02:47:4c:00:00:01"
''', '''  - name: d2
    address: 198.18.0.12
    interface: eth0
    gateway_mac: "02:47:4c:00:00:01"
  - name: d3
    address: 198.18.0.13
    interface: eth0
    gateway_mac: "02:47:4c:00:00:01"
''').replace('''  - name: p3
    address: 198.18.0.23
    interface: eth0
''', '''  - name: p3
    address: 198.18.0.23
    interface: eth0
  - name: p4
    address: 198.18.0.24
    interface: eth0
''')
BACKENDS = '''    backends:
      - address: 198.18.0.21
      - address: 198.18.0.22
      - address: 198.18.0.23
'''
assert BACKENDS in FLEET and "d3" in FLEET and "p4" in FLEET


def fleet(p1: str = "active", p4: str | None = None, interval: str = "0.3") -> str:
    backends = BACKENDS.replace("      - address: 198.18.0.21\n",
                                f"      - address: 198.18.0.21\n        state: {p1}\n")
    if p4:
        backends += f"      - address: 198.18.0.24\n        state: {p4}\n"
    text = FLEET.replace(BACKENDS, backends)
    return text.replace("healthcheck:\n", f"healthcheck:\n      interval: {interval}\n", 1)


class Run:
    """One pass over the steps, with the keeper's report read after each."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.tmp, self.name = tmp, name
        self.cfg = tmp / f"{name}.yml"
        self.report = tmp / f"{name}-report.json"
        self.close_file = tmp / f"{name}-retired"
        self.rows: list[tuple[str, int, int, int, str]] = []
        self.keeper: subprocess.Popen | None = None
        self.sources = [str(a) for a in plan(_loaded(FLEET, tmp)).client_addresses]

    def write(self, text: str) -> None:
        self.cfg.write_text(text)

    def start_keeper(self, count: int = N_CONNS, extra: tuple[str, ...] = ()) -> None:
        self.keeper = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{CLIENT_NS}", sys.executable, "-m", "glb_agent.lab.conns",
             "--vip", VIP, "--sources", ",".join(self.sources[:48]), "--count", str(count),
             "--interval", "0.3", "--timeout", "9", "--duration", "900", "--report", str(self.report),
             "--close-file", str(self.close_file), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.wait_for(lambda: (r := self.read()) is not None and r["alive"] == count, 60 + count / 10,
                     f"{count} connections up")

    def read(self) -> dict | None:
        try:
            return json.loads(self.report.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def new_connections(self, n: int = 16) -> str:
        ok = 0
        for src in self.sources[48:48 + n]:
            r = netns.run("curl", "-s", "-m", "3", "--interface", src, f"http://{VIP}/", ns=CLIENT_NS,
                          check=False)
            ok += r.returncode == 0 and '"proxy"' in r.stdout
        return f"{ok}/{n}"

    def record(self, step: str, settle: float = 2.0) -> dict:
        time.sleep(settle)  # let every connection do a few exchanges after the change
        report = self.read()
        assert report is not None
        self.rows.append((step, report["alive"], report["broken"], report["closed"], self.new_connections()))
        return report

    def stop(self) -> dict:
        assert self.keeper is not None
        self.keeper.send_signal(signal.SIGTERM)
        self.keeper.wait(timeout=30)
        return self.read() or {}

    def table(self) -> str:
        lines = [f"{self.name}: {'step':<44}{'alive':>6}{'broken':>8}{'closed':>8}{'new ok':>8}"]
        lines += [f"{'':<{len(self.name) + 2}}{s:<44}{a:>6}{b:>8}{c:>8}{n:>8}" for s, a, b, c, n in self.rows]
        return "\n".join(lines)


def _loaded(text: str, tmp: Path):
    from glb_agent.config import load_config

    path = tmp / "plan.yml"
    path.write_text(text)
    return load_config(path)


def apply_everywhere(run: Run, directors: list[str]) -> None:
    lab.apply(run.cfg, directors)  # the lab's own copy of the YAML, derived again from the edit


def routes() -> set[str]:
    return lab.nexthops(f"{VIP}/32") or lab.nexthops(VIP)


@pytest.fixture
def clean_lab():
    if why := can_run():
        pytest.skip(why)
    lab.down(quiet=True)
    yield
    lab.down(quiet=True)


def test_connections_survive_every_fleet_change(clean_lab, tmp_path: Path, capsys) -> None:
    glb = Run(tmp_path, "glb")
    glb.write(fleet())
    lab.up(glb.cfg, directors=["d1", "d2"], proxies=["p1", "p2", "p3"])
    glb.start_keeper()
    glb.record("0 start: d1 d2, p1 p2 p3", settle=1)

    lab.start_director(glb.cfg, "d3", "glb-lab-d3")
    lab.wait_for(lambda: "198.18.0.13" in lab.nexthops(VIP), 60, "d3 announced")
    glb.record("1 add director d3 (ECMP rehash)")

    drain = subprocess.run(["nsenter", "--net=/run/netns/glb-lab-d2", AGENT, "drain", "--wait", "20"],
                           env={"GLB_STATE_DIR": str(lab.RUN_DIR / "d2"), "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=60)
    assert drain.returncode == 0, drain.stdout + drain.stderr
    lab.wait_for(lambda: "198.18.0.12" not in lab.nexthops(VIP), 20, "d2 withdrawn")
    lab.stop_director("d2")
    glb.record("2 drain + remove director d2")

    lab.stop_director("d1", how="kill")
    lab.wait_for(lambda: "198.18.0.11" not in lab.nexthops(VIP), 20, "d1's path dropped")
    glb.record("3 SIGKILL director d1 (agent + ExaBGP)")

    glb.write(fleet(p4="filling"))
    lab.start_proxy(glb.cfg, "p4", "glb-lab-p4")
    apply_everywhere(glb, ["d3"])
    glb.record("4a add proxy p4 filling")
    glb.write(fleet(p4="active"))
    apply_everywhere(glb, ["d3"])
    glb.record("4b p4 active")

    glb.write(fleet(p1="draining", p4="active"))
    apply_everywhere(glb, ["d3"])
    glb.record("5a drain proxy p1")
    glb.close_file.write_text("p1\n")  # p1's connections end (as clients finish)
    lab.wait_for(lambda: not any(c["proxy"] == "p1" and c["error"] is None and not c["closed"]
                                 for c in glb.read()["connections"]), 20, "p1's connections to end")
    glb.write(fleet(p1="inactive", p4="active"))
    apply_everywhere(glb, ["d3"])
    glb.record("5b p1 inactive after its connections ended")

    subprocess.run(["kill", "-TERM", (lab.RUN_DIR / "d3" / "agent.pid").read_text().strip()], check=True)
    time.sleep(1)
    lab.start_director_agent(glb.cfg, "d3", "glb-lab-d3")
    lab.wait_for(lambda: (lab.RUN_DIR / "d3" / "director.pid").exists(), 30, "d3 agent back")
    glb.record("6a restart d3's agent (adopts the program)")
    glb.write(fleet(p1="inactive", p4="active", interval="0.5"))
    apply_everywhere(glb, ["d3"])
    glb.record("6b reload a changed YAML")
    final = glb.stop()
    broken = [c for c in final["connections"] if c["error"]]
    stalls = max(c["max_gap"] for c in final["connections"])
    with capsys.disabled():
        print("\n" + glb.table() + f"\n  longest stall of any connection: {stalls:.2f}s")

    # --- control: the same proxy steps with the router's ECMP straight to the proxies -----
    lab.down(quiet=True)
    ctl = Run(tmp_path, "ecmp")
    ctl.write(fleet())
    p = plan(_loaded(ctl.cfg.read_text(), tmp_path))
    build(p)
    for name in ("p1", "p2", "p3"):
        lab.start_proxy(ctl.cfg, name, f"glb-lab-{name}")

    def ecmp(*proxies: str) -> None:
        hops = [a for n in proxies for a in ("nexthop", "via", f"198.18.0.{20 + int(n[1])}")]
        netns.run("ip", "route", "replace", f"{VIP}/32", *hops, ns=p.router.ns)

    ecmp("p1", "p2", "p3")
    lab.wait_for(lambda: ctl.new_connections(3) == "3/3", 30, "the VIP answering over router ECMP")
    ctl.start_keeper()
    ctl.record("0 start: ECMP to p1 p2 p3", settle=1)
    for step in ("1 add director (n/a)", "2 remove director (n/a)", "3 kill director (n/a)"):
        ctl.record(step, settle=0.5)
    ctl.write(fleet(p4="active"))
    lab.start_proxy(ctl.cfg, "p4", "glb-lab-p4")
    ecmp("p1", "p2", "p3", "p4")
    ctl.record("4 add proxy p4 to ECMP", settle=4)
    ecmp("p2", "p3", "p4")
    ctl.record("5 remove proxy p1 from ECMP", settle=4)
    ctl_final = ctl.stop()
    with capsys.disabled():
        print(ctl.table())

    assert not broken, f"{len(broken)} GLB connections broke: {broken[:3]}"
    assert final["closed"] > 0 and final["alive"] + final["closed"] == N_CONNS
    assert stalls < 9, f"a connection stalled {stalls:.1f}s (> BGP hold time)"
    assert all(row[4] == "16/16" for row in glb.rows), glb.table()
    assert ctl_final["broken"] > 0, "plain ECMP broke nothing: the control run proves nothing"
