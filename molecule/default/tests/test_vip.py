"""End-to-end checks of the Molecule fleet from the host: BGP + ECMP at the router namespace
(glbm-r1) and real HTTP requests to the VIP from the client namespace (glbm-c), through the
directors' XDP data plane and the proxies' GUE decapsulation, answered by direct server return.

testinfra runs every test per inventory host; these run once, on d1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

# The running scenario's fleet (default: 2 directors + 2 proxies; ci: 1 + 1).
SCENARIO = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).resolve().parents[1]))
FLEET = yaml.safe_load((SCENARIO / "group_vars" / "all" / "glb.yml").read_text())
VIP = FLEET["services"][0]["vips"][0]
CLIENTS = [f"198.51.100.{i}" for i in range(10, 18)]


@pytest.fixture
def once(host: Any) -> None:
    if host.ansible.get_variables()["inventory_hostname"] != "d1":
        pytest.skip("checked once, from the host (on d1's turn)")


def _netns(ns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)


def test_router_has_ecmp_route_over_every_director(once: None) -> None:
    route = _netns("glbm-r1", "ip", "-4", "route", "show", f"{VIP}/32").stdout
    hops = set(re.findall(r"via (\d+\.\d+\.\d+\.\d+)", route))
    assert hops == {d["address"] for d in FLEET["directors"]}, route


def test_http_to_the_vip_from_the_client(once: None) -> None:
    answered: dict[str, str] = {}
    for src in CLIENTS:
        res = _netns("glbm-c", "curl", "-sS", "--max-time", "10", "--interface", src, f"http://{VIP}/")
        assert res.returncode == 0, (src, res.stderr)
        body = json.loads(res.stdout)
        assert body["client"] == src, body  # the proxy saw the client's own address (no NAT)
        answered[src] = body["proxy"]
    assert set(answered.values()) <= {p["name"] for p in FLEET["proxies"]}, answered
    # The same source always lands on the same proxy (hash_fields: src_addr).
    for src in CLIENTS[:3]:
        res = _netns("glbm-c", "curl", "-sS", "--max-time", "10", "--interface", src, f"http://{VIP}/")
        assert json.loads(res.stdout)["proxy"] == answered[src]
    assert len(set(answered.values())) == len(FLEET["proxies"]), f"8 clients not spread over every proxy: {answered}"
