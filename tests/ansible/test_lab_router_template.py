"""glb_lab_router's bird.conf for a dual-stack fleet: IPv4 sessions to the directors' address,
IPv6 sessions to their address6, and BIRD itself accepts the result (`bird -p`)."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import yaml

from tests.ansible.birdcheck import assert_bird_parses

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "roles/glb_lab_router/templates/bird.conf.j2"
EXAMPLE = ROOT / "inventories/example/group_vars/all/glb.yml"


def _render(fleet: dict, name: str, name6: str) -> str:
    peers = {p["name"]: p for p in fleet["bgp"]["peers"]}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(TEMPLATE.read_text()).render(
        ansible_managed="Ansible managed", glb_lab_router_name=name, glb_lab_router_fleet=fleet,
        glb_lab_router_peer=peers[name], glb_lab_router_peer6=peers.get(name6, {}),
        glb_lab_router_router_id="", glb_lab_router_max_paths=16)


def test_dual_stack_router_gets_both_session_families(tmp_path: Path) -> None:
    fleet = yaml.safe_load(EXAMPLE.read_text())
    conf = _render(fleet, "edge1", "edge1-v6")
    neighbors = re.findall(r"neighbor (\S+) as 65100;", conf)
    assert neighbors == ["192.0.2.11", "192.0.2.12", "192.0.2.13",
                         "2001:db8:f::11", "2001:db8:f::12", "2001:db8:f::13"]
    assert "local 192.0.2.1 as 65000;" in conf and "local 2001:db8:f::1 as 65000;" in conf
    # Each session carries one family; the kernel gets multipath routes for both.
    v4, v6 = conf.split("template bgp glb_director6")
    assert "ipv6 {" not in v4.split("template bgp glb_director")[1]
    assert "ipv4 {" not in v6
    assert conf.count("merge paths on") == 2
    assert_bird_parses(conf, tmp_path)


def test_ipv4_only_router_has_no_ipv6_sessions(tmp_path: Path) -> None:
    fleet = yaml.safe_load(EXAMPLE.read_text())
    conf = _render(fleet, "edge2", "")
    assert re.findall(r"neighbor (\S+) as 65100;", conf) == ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
    assert "glb_director6" not in conf
    assert_bird_parses(conf, tmp_path)
