"""glb_proxy: decap attached, this proxy's VIPs on loopback, DSR sysctls."""

from __future__ import annotations

import ipaddress
import re
from typing import Any


def test_service_active(host: Any, proxy: dict[str, Any]) -> None:
    service = host.service("glb-proxy.service")
    assert service.is_enabled
    assert service.is_running  # oneshot with RemainAfterExit: "active"


def test_decap_attached_on_the_proxy_interface(host: Any, proxy: dict[str, Any]) -> None:
    link = host.check_output(f"ip -d link show dev {proxy['interface']}")
    assert re.search(r"prog/xdp id \d+", link), link


def test_vips_on_loopback(host: Any, proxy: dict[str, Any], fleet: dict[str, Any]) -> None:
    mine = [svc for svc in fleet["services"]
            if any(b["address"] == proxy["address"] for b in svc["backends"])]
    addresses = host.check_output("ip -o addr show dev lo")
    on_lo = {ipaddress.ip_interface(m).ip for m in re.findall(r"inet6? (\S+)", addresses)}
    for svc in mine:
        for vip in svc["vips"]:
            assert ipaddress.ip_address(vip) in on_lo, (svc["name"], vip, addresses)


def test_dsr_sysctls(host: Any, proxy: dict[str, Any]) -> None:
    assert host.sysctl("net.ipv4.conf.all.arp_ignore") == 1
    assert host.sysctl("net.ipv4.conf.all.arp_announce") == 2
