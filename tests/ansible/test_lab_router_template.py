"""The lab router's bird.conf as glb_lab_router renders it (`glb-agent bgp router`, the package's
bgp/bird.conf.j2 -- the template the namespace lab runs too): a dual-stack fleet gets IPv4
sessions to the directors' address and IPv6 sessions to their address6, only the fleet's
prefixes are imported, and BIRD itself accepts the result (`bird -p`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.ansible.birdcheck import assert_bird_parses

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories/example/group_vars/all/glb.yml"
ROLE = ROOT / "roles/glb_lab_router"


def _render(*peers: str) -> str:
    """Exactly the role's command (tasks/main.yml), run with this venv's agent."""
    argv = [str(Path(sys.executable).with_name("glb-agent")), "bgp", "router", "--config", str(EXAMPLE)]
    for peer in peers:
        argv += ["--peer", peer]
    done = subprocess.run([*argv, "--max-paths", "16", "--log", "syslog"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_role_has_no_template_of_its_own() -> None:
    assert not (ROLE / "templates").exists()
    tasks = (ROLE / "tasks/main.yml").read_text()
    assert "'bgp', 'router'" in tasks and "validate: bird -p -c %s" in tasks and 'mode: "0600"' in tasks


def test_dual_stack_router_gets_both_session_families(tmp_path: Path) -> None:
    conf = _render("edge1", "edge1-v6")
    neighbors = re.findall(r"neighbor (\S+) as 65100;", conf)
    assert neighbors == ["192.0.2.11", "192.0.2.12", "192.0.2.13",
                         "2001:db8:f::11", "2001:db8:f::12", "2001:db8:f::13"]
    assert "local 192.0.2.1 as 65000;" in conf and "local 2001:db8:f::1 as 65000;" in conf
    # Each session carries one family; the kernel gets multipath routes for both.
    v4, v6 = conf.split("template bgp glb_director_v6")
    assert "ipv6 {" not in v4.split("template bgp glb_director_v4")[1]
    assert "ipv4 {" not in v6
    assert conf.count("merge paths on") == 2
    # Only the fleet's prefixes, never "import all" (the old role template's defect).
    fleet = yaml.safe_load(EXAMPLE.read_text())
    vips = [v for s in fleet["services"] for v in s["vips"] if ":" not in str(v)]
    assert "import all" not in conf and all(f"{v}/32" in conf for v in vips)
    assert "bfd {" in conf and "protocol bfd" in conf
    assert_bird_parses(conf, tmp_path)


def test_ipv4_only_router_has_no_ipv6_sessions(tmp_path: Path) -> None:
    conf = _render("edge2")
    assert re.findall(r"neighbor (\S+) as 65100;", conf) == ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
    assert "glb_director_v6" not in conf
    assert_bird_parses(conf, tmp_path)
