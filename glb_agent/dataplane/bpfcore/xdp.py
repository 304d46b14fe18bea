"""The one answer to "which XDP program runs on this interface".

BGP readiness, ``status`` and both loaders ask it; before this module each had its own
netlink query (two through pyroute2, one through libbpf) and they disagreed on modes.
It asks rtnetlink through libbpf's ``bpf_xdp_query`` (one short C round trip, cheap enough
for the feed's 5-10 polls a second) in the caller's network namespace.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

from glb_agent.dataplane.bpfcore import binding
from glb_agent.errors import GlbError

XdpMode = Literal["auto", "native", "generic"]
XDP_MODES: tuple[str, ...] = ("auto", "native", "generic")


class NoSuchInterface(GlbError):
    """The interface does not exist in this network namespace."""


def interface_index(interface: str) -> int:
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise NoSuchInterface(f"interface {interface} does not exist") from None


@dataclass(frozen=True)
class Attachment:
    """The XDP program running on an interface."""

    ifindex: int
    prog_id: int
    mode: str  # native, generic, offload
    name: str  # the program's name ("?" if it vanished while we looked)


def attached(interface: str | int) -> Attachment | None:
    """What runs on ``interface`` (a name, or an ifindex), or None.

    Raises NoSuchInterface for a missing interface, OSError if netlink fails.
    """
    ifindex = interface if isinstance(interface, int) else interface_index(interface)
    query = binding.xdp_query(ifindex)
    if query.mode is None or not query.prog_ids:
        return None
    mode = query.mode
    prog_id = {"native": query.native, "generic": query.generic, "offload": query.offload}.get(mode, 0)
    if not prog_id:  # "multi": more than one mode; report the one that sees packets first
        mode, prog_id = next((m, p) for m, p in (("offload", query.offload), ("native", query.native),
                                                  ("generic", query.generic)) if p)
    return Attachment(ifindex, prog_id, mode, prog_name(prog_id))


def prog_name(prog_id: int) -> str:
    """The name of loaded program ``prog_id`` ("?" if it is gone)."""
    try:
        fd = binding.prog_fd_by_id(prog_id)
    except OSError:
        return "?"
    try:
        return binding.prog_info(fd).name
    finally:
        binding.close(fd)
