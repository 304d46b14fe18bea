"""glb_lab_router: BIRD up, a session per director, ECMP routes for the VIPs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import ipv4_prefixes


@pytest.fixture
def router(hostvars: dict[str, Any], controller_glb: Path) -> tuple[str, dict[str, Any]]:
    import yaml

    if "routers" not in hostvars.get("group_names", []):
        pytest.skip("not in group routers")
    return str(hostvars.get("glb_name", hostvars["inventory_hostname"])), yaml.safe_load(controller_glb.read_text())


def _peering(name: str, fleet: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in fleet["directors"] if d.get("bgp_peers") is None or name in d["bgp_peers"]]


def test_bird_running_with_merge_paths(host: Any, router: tuple[str, dict[str, Any]]) -> None:
    assert host.service("bird.service").is_running
    assert "merge paths on" in host.file("/etc/bird/bird.conf").content_string


def test_session_per_director_established(host: Any, router: tuple[str, dict[str, Any]]) -> None:
    name, fleet = router
    protocols = host.check_output("birdc show protocols")
    for d in _peering(name, fleet):
        proto = "d_" + re.sub(r"[^A-Za-z0-9_]", "_", d["name"])  # glb_agent.bgp.router's naming
        assert re.search(rf"^{proto}\s+BGP\s+.*\bEstablished", protocols, re.M), protocols


def test_vips_routed_over_every_director(host: Any, router: tuple[str, dict[str, Any]]) -> None:
    name, fleet = router
    directors = {d["address"] for d in _peering(name, fleet)}
    for prefix in ipv4_prefixes(fleet):
        route = host.check_output(f"ip -4 route show {prefix}")
        hops = set(re.findall(r"via (\d+\.\d+\.\d+\.\d+)", route))
        assert hops == directors, (prefix, route)
