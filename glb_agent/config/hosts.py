"""Which entry of glb.yml this host is: by name, or by which configured address is local."""

from __future__ import annotations

import ipaddress
import socket

from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import Director
from glb_agent.errors import InputError


def is_local_address(address: ipaddress.IPv4Address) -> bool:
    """True when ``address`` is configured on this host (binding to it succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((str(address), 0))
        except OSError:
            return False
    return True


def director_named(loaded: LoadedConfig, name: str) -> Director:
    for d in loaded.config.directors:
        if d.name == name:
            return d
    known = ", ".join(d.name for d in loaded.config.directors)
    raise InputError(f"no director named {name!r} in {loaded.source} (known: {known})")


def local_directors(loaded: LoadedConfig) -> list[Director]:
    """Directors whose address or GUE source address is configured on this host."""
    return [d for d in loaded.config.directors
            if is_local_address(d.address) or is_local_address(d.outer_source)]
