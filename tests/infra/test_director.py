"""glb_director: services, XDP on the right interface, pinned maps, VIPs announced."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.conftest import AGENT, ipv4_prefixes


def test_services_enabled_and_running(host: Any, director: dict[str, Any]) -> None:
    for unit in ("glb-director.service", "exabgp.service"):
        service = host.service(unit)
        assert service.is_enabled, unit
        assert service.is_running, unit


def test_exabgp_is_bound_to_the_data_plane(host: Any, director: dict[str, Any]) -> None:
    props = host.check_output("systemctl show exabgp.service -p After -p Requires -p PartOf")
    assert re.search(r"^After=.*\bglb-director\.service", props, re.M), props
    assert re.search(r"^Requires=.*\bglb-director\.service", props, re.M), props
    assert re.search(r"^PartOf=.*\bglb-director\.service", props, re.M), props


def test_xdp_attached_on_the_director_interface(host: Any, director: dict[str, Any]) -> None:
    link = host.check_output(f"ip -d link show dev {director['interface']}")
    assert re.search(r"prog/xdp id \d+", link), link


def test_maps_pinned(host: Any, director: dict[str, Any]) -> None:
    pinned = host.check_output("find /sys/fs/bpf/glb -mindepth 1 -maxdepth 3")
    assert pinned.strip(), "nothing pinned under /sys/fs/bpf/glb"


def test_rendered_files(host: Any, director: dict[str, Any]) -> None:
    for name in ("exabgp.conf", "director.conf", "forwarding_table.bin"):
        assert host.file(f"/etc/glb/director/{name}").is_file, name
    assert f"--name {director['name']}" in host.file("/etc/glb/director/exabgp.conf").content_string


def test_vips_announced(host: Any, director: dict[str, Any], fleet: dict[str, Any]) -> None:
    status = json.loads(host.check_output(f"{AGENT} bgp status"))
    assert status["feed_running"], status
    assert not status["drained"], status
    assert status["feed"]["confirmed"], status
    assert ipv4_prefixes(fleet) <= set(status["feed"]["announced"]), status
