"""Host checks of a provisioned fleet (pytest-testinfra, ``ops`` extra), run against an inventory:

    pytest tests/infra --hosts='ansible://all' --ansible-inventory=inventories/lab/hosts.yml

Each check applies to the hosts of its inventory group (directors, proxies, routers) and is
skipped on the others. Without ``--hosts`` or ``--ansible-inventory`` (Molecule's testinfra
verifier passes the latter with ``--connection=ansible``) every test here is skipped:
testinfra would otherwise run them against the machine running pytest.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
CONFIG = "/etc/glb/glb.yml"
AGENT = "/opt/glb/venv/bin/glb-agent"
USAGE = "host checks: run with --hosts=ansible://GROUP --ansible-inventory=inventories/NAME/hosts.yml"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        targets = config.getoption("hosts") or config.getoption("ansible_inventory")
    except ValueError:  # pytest-testinfra is not installed
        targets = None
    if targets:
        return
    skip = pytest.mark.skip(reason=USAGE)
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture
def hostvars(host: Any) -> dict[str, Any]:
    """The host's inventory variables (glb_name, group_names)."""
    return host.ansible.get_variables()


@pytest.fixture
def fleet(host: Any) -> dict[str, Any]:
    """glb.yml as installed on the host."""
    import yaml

    installed = host.file(CONFIG)
    assert installed.exists, f"{CONFIG} is missing: glb_common has not run on this host"
    return yaml.safe_load(installed.content_string)


@pytest.fixture
def controller_glb(request: pytest.FixtureRequest) -> Path:
    inventory = request.config.getoption("ansible_inventory", None)
    if not inventory:
        pytest.skip("needs --ansible-inventory to find the controller's glb.yml")
    # A file (inventories/NAME/hosts.yml) or a directory (Molecule's ephemeral inventory/).
    path = Path(inventory).resolve()
    return (path if path.is_dir() else path.parent) / "group_vars" / "all" / "glb.yml"


def _member(hostvars: dict[str, Any], group: str) -> str:
    if group not in hostvars.get("group_names", []):
        pytest.skip(f"not in group {group}")
    return str(hostvars.get("glb_name", hostvars["inventory_hostname"]))


@pytest.fixture
def director(hostvars: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    name = _member(hostvars, "directors")
    fleet = request.getfixturevalue("fleet")
    return next(d for d in fleet["directors"] if d["name"] == name)


@pytest.fixture
def proxy(hostvars: dict[str, Any], request: pytest.FixtureRequest) -> dict[str, Any]:
    name = _member(hostvars, "proxies")
    fleet = request.getfixturevalue("fleet")
    return next(p for p in fleet["proxies"] if p["name"] == name)


@pytest.fixture
def glb_host(hostvars: dict[str, Any]) -> str:
    """A director or a proxy: the hosts glb_common configured."""
    groups = set(hostvars.get("group_names", []))
    if not groups & {"directors", "proxies"}:
        pytest.skip("neither a director nor a proxy")
    return str(hostvars.get("glb_name", hostvars["inventory_hostname"]))


def ipv4_prefixes(fleet: dict[str, Any]) -> set[str]:
    """What every director announces over its IPv4 sessions: IPv4 VIPs as /32, IPv4 cidrs."""
    found: set[str] = set()
    for svc in fleet["services"]:
        for net in [*svc["vips"], *svc.get("cidrs", [])]:
            prefix = ipaddress.ip_network(net)
            if prefix.version == 4:
                found.add(str(prefix))
    return found
