"""The one "which host am I" resolver: named, by local address, strict or lenient."""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from glb_agent import logs
from glb_agent.config import load_config
from glb_agent.config.hosts import this_director, this_proxy
from glb_agent.errors import InputError
from glb_agent.util.net import local_addresses
from tests.config.test_broken_yaml import replace
from tests.support.fleet import director_address, write_fleet
from tests.support.netns import can_run

TWO_DIRECTORS = replace("""    gateway_mac: "02:00:00:00:00:01"
""", """    gateway_mac: "02:00:00:00:00:01"
  - name: d2
    address: 198.18.0.12
    address6: "2001:db8:18::12"
    source_ip: 198.18.0.112
    interface: eth0
    gateway_mac: "02:00:00:00:00:01"
""")


def ips(*text: str) -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return frozenset(ipaddress.ip_address(t) for t in text)


@pytest.fixture
def cfg(tmp_path: Path):
    path = tmp_path / "glb.yml"
    path.write_text(TWO_DIRECTORS)
    return load_config(path)


def test_a_name_wins_and_an_unknown_name_is_an_error_in_both_policies(cfg) -> None:
    assert this_director(cfg, "d2", strict=True, local=ips("198.18.0.11")).name == "d2"
    for strict in (True, False):
        with pytest.raises(InputError, match=r"no director named 'd9' in .*glb.yml \(directors: d1, d2\)"):
            this_director(cfg, "d9", strict=strict, local=frozenset())


def test_any_of_address_gue_source_or_address6_identifies_a_director(cfg) -> None:
    for addr in ("198.18.0.12", "198.18.0.112", "2001:db8:18::12"):
        assert this_director(cfg, strict=True, local=ips(addr, "127.0.0.1")).name == "d2"


def test_strict_refuses_to_guess_and_lenient_falls_back_to_the_first(cfg) -> None:
    with pytest.raises(InputError, match=r"cannot tell which director .*none.*pass --name"):
        this_director(cfg, strict=True, local=ips("192.0.2.1"))
    assert this_director(cfg, strict=False, local=ips("192.0.2.1")).name == "d1"


def test_two_local_directors_are_an_error_even_when_lenient(cfg) -> None:
    for strict in (True, False):
        with pytest.raises(InputError, match=r"\(2 of the directors' addresses are local\)"):
            this_director(cfg, strict=strict, local=ips("198.18.0.11", "198.18.0.12"))


def test_proxies_resolve_the_same_way(cfg) -> None:
    assert this_proxy(cfg.config, strict=True, local=ips("198.18.0.22")).name == "p2"
    assert this_proxy(cfg, "p1", strict=True, local=frozenset()).name == "p1"
    with pytest.raises(InputError, match="cannot tell which proxy"):
        this_proxy(cfg, strict=True, local=frozenset())
    with pytest.raises(InputError, match=r"no proxy named 'p9'"):
        this_proxy(cfg, "p9", strict=True)


def test_local_addresses_reads_this_namespace() -> None:
    assert ips("127.0.0.1", "::1") <= local_addresses()


@pytest.mark.netns
@pytest.mark.skipif(can_run() is not None, reason=str(can_run()))
def test_nonlocal_bind_does_not_make_another_hosts_address_ours(tmp_path: Path) -> None:
    """In a namespace with ip_nonlocal_bind=1 every bind() succeeds; only d2's real address counts."""
    path = tmp_path / "glb.yml"
    path.write_text(TWO_DIRECTORS)
    ns = f"glb-t-hosts-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        def inside(*cmd: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True)
        assert inside("sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1").returncode == 0
        inside("ip", "link", "set", "lo", "up")
        assert inside("ip", "addr", "add", "198.18.0.112/32", "dev", "lo").returncode == 0
        probe = textwrap.dedent(f"""
            from glb_agent.config import load_config
            from glb_agent.config.hosts import this_director
            print(this_director(load_config({str(path)!r}), strict=True).name)
        """)
        out = inside(sys.executable, "-c", probe)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "d2"
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


class _Records(logging.Handler):
    """Keeps the log records it is given (the resolver's warnings)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_lenient_fallback_warns_which_director_and_source_it_uses(cfg) -> None:
    log = logs.get("config.hosts")
    seen = _Records()
    log.addHandler(seen)
    try:
        this_director(cfg, strict=False, local=ips("198.18.0.12"))  # d2 is local: no guess
        this_director(cfg, "d2", strict=False, local=frozenset())  # named: no guess
        assert seen.records == []
        assert this_director(cfg, strict=False, local=ips("192.0.2.1")).name == "d1"
    finally:
        log.removeHandler(seen)
    [record] = seen.records
    assert record.getMessage() == "host_not_in_config"
    detail = logs.JsonFormatter().format(record)
    assert "acting as the first, 'd1'" in detail and "source address 198.18.0.11" in detail, detail
    assert "pass --name" in detail


@pytest.mark.netns
@pytest.mark.skipif(can_run() is not None, reason=str(can_run()))
def test_health_check_from_a_workstation_says_which_director_it_probes_as(tmp_path: Path) -> None:
    """`glb-agent health check` on a host that is no director (a namespace with only lo, so
    no probe leaves it) still runs, as the first director, and says so on stderr."""
    path = write_fleet(tmp_path / "glb.yml", 1, directors=2, healthcheck={"tcp": {"port": 80}})
    ns = f"glb-t-hosts-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        out = subprocess.run(["ip", "netns", "exec", ns, str(Path(sys.executable).with_name("glb-agent")),
                              "health", "check", str(path), "--once", "--json"],
                             capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert out.returncode == 1, out.stdout + out.stderr  # the backend is unreachable from there
    assert json.loads(out.stdout)["director"] == "d1"
    warning = json.loads(next(ln for ln in out.stderr.splitlines() if "host_not_in_config" in ln))
    assert warning["level"] == "warning" and warning["using"] == "d1"
    assert f"GUE probes come from its source address {director_address(1)}" in warning["detail"]
