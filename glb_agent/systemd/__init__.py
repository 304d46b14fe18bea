"""systemd units of the agents (package-data templates) and the sd_notify readiness call.

The units carry host-specific values (director/proxy name, config and venv paths), so
they are Jinja2 templates rendered by ``render_units`` (``glb-agent units`` on the host,
which is what the Ansible roles run); the unit *semantics* live here,
next to the code they start, so the ordering contract is versioned with it:

* ``glb-director.service`` is ``Type=notify``: the director agent must call
  ``notify("READY=1")`` once the XDP program is attached and the first tables are live.
* ``exabgp.service`` Requires= and is After= it, so VIPs are announced only then.
* ``glb-proxy.service`` is a oneshot: ``proxy apply`` leaves the program attached.
* ``glb-director-dpdk.service`` (directors with ``dataplane: dpdk``) runs the DPDK process
  in its own cgroup, so an agent restart leaves it forwarding; the agent starts it
  (``systemctl start``) and adopts it (glb_agent/dataplane/dpdk.py).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

DPDK_UNIT = "glb-director-dpdk.service"
UNITS = ("glb-director.service", "exabgp.service", "glb-proxy.service", DPDK_UNIT)
DIRECTOR_UNITS = ("glb-director.service", "exabgp.service")
DPDK_DIRECTOR_UNITS = (*DIRECTOR_UNITS, DPDK_UNIT)  # a director with dataplane: dpdk
PROXY_UNITS = ("glb-proxy.service",)


@dataclass(frozen=True)
class UnitSettings:
    """Host-specific values the unit templates need."""

    name: str  # director or proxy name in glb.yml
    config: Path = Path("/etc/glb/glb.yml")
    agent: Path = Path("/opt/glb/venv/bin/glb-agent")
    exabgp: Path = Path("/opt/glb/venv/bin/exabgp")
    exabgp_conf: Path = Path("/etc/glb/exabgp.conf")
    metrics_port: int = 9472


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_unit(unit: str, settings: UnitSettings) -> str:
    """The text of ``unit`` (one of ``UNITS``) for this host."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(UNITS)}")
    ctx = {k: str(v) for k, v in vars(settings).items()}
    return _environment().get_template(f"{unit}.j2").render(**ctx)


def render_units(settings: UnitSettings, units: tuple[str, ...] = UNITS) -> dict[str, str]:
    return {unit: render_unit(unit, settings) for unit in units}


def notify(state: str = "READY=1") -> bool:
    """Send ``state`` to systemd (sd_notify protocol); False when not run by systemd.

    Plain datagram to ``$NOTIFY_SOCKET`` (path or abstract ``@name``), so no libsystemd
    binding is needed. Use ``READY=1`` after the first table load, ``RELOADING=1`` /
    ``READY=1`` around a SIGHUP reload and ``STOPPING=1`` on shutdown.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
    return True
