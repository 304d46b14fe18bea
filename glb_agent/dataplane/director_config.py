"""From ``glb.yml`` to what the director loader takes: settings for this host, full tables.

Kept out of the loader so the data plane stays usable without the YAML layer (tests, the
health checker feeding its own health view) and the loader has no opinion on config files.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import subprocess
import time
from pathlib import Path

import numpy as np

from glb_agent.config.hosts import this_director
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import Director as DirectorConfig
from glb_agent.config.tables import HealthView, table_specs
from glb_agent.dataplane.director import DirectorSettings, XdpMode
from glb_agent.errors import GlbError
from glb_agent.table.spec import TableSpec


def resolve_mac(ip: ipaddress.IPv4Address, interface: str, timeout: float = 3.0) -> str:
    """The neighbour MAC of ``ip`` on ``interface``, prodding ARP with one datagram if needed."""
    deadline = time.monotonic() + timeout
    prodded = False
    while True:
        out = subprocess.run(["ip", "-j", "neigh", "show", "to", str(ip), "dev", interface],
                             capture_output=True, text=True, check=False).stdout
        with contextlib.suppress(ValueError):
            for entry in json.loads(out or "[]"):
                mac, state = entry.get("lladdr"), entry.get("state", [])
                if mac and "FAILED" not in state and "INCOMPLETE" not in state:
                    return str(mac).lower()
        if time.monotonic() >= deadline:
            raise GlbError(f"next hop {ip} on {interface} does not answer ARP; set gateway_mac instead")
        if not prodded:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
                s.sendto(b"", (str(ip), 9))  # discard port: only the ARP request matters
            prodded = True
        time.sleep(0.1)


def director_settings(loaded: LoadedConfig, name: str | None = None, *, pin_dir: Path | None = None,
                      xdp_mode: XdpMode = "auto", resolve: bool = True) -> DirectorSettings:
    d: DirectorConfig = this_director(loaded, name, strict=True)  # never guess: wrong source black-holes
    if d.gateway_mac is not None:
        gateway = d.gateway_mac
    elif resolve:
        assert d.next_hop is not None  # the model requires one of the two
        gateway = resolve_mac(d.next_hop, d.interface)
    else:
        gateway = "02:00:00:00:00:00"  # placeholder for commands that never compile
    return DirectorSettings(
        interface=d.interface,
        source_ip=d.outer_source,
        gateway_mac=gateway,
        hash_fields=tuple(loaded.config.fleet.hash_fields),
        alt_hash_fields=tuple(loaded.config.fleet.alt_hash_fields or ()),
        row_width=row_width(loaded),
        pin_dir=pin_dir,  # type: ignore[arg-type]  # None -> default
        xdp_mode=xdp_mode,
        meta={"director": d.name, "fleet": loaded.config.fleet.name},
    )


def table_rows(loaded: LoadedConfig, health: HealthView | None = None
               ) -> list[tuple[TableSpec, np.ndarray | None]]:
    """Every service's spec with its full send-order rows (destination first, then the GUE
    hop list; (65536, W) backend indices), built by the rendezvous table builder; None for
    a service without backends."""
    from glb_agent.table.rendezvous import build_all

    specs = table_specs(loaded, health)
    with_backends = [s for s in specs if s.backends]
    built = dict(zip((s.name for s in with_backends), build_all(with_backends), strict=True))
    return [(s, built.get(s.name)) for s in specs]


def for_dataplane(tables: list[tuple[TableSpec, np.ndarray | None]]
                  ) -> list[tuple[TableSpec, np.ndarray | None]]:
    """The rows as compile_tables takes them: the director reads the whole send order
    (K-wide rows, bpf/include/glb_table.h; W <= director_maps.MAX_ROW_WIDTH), so they pass
    as built."""
    from glb_agent.dataplane.director_maps import MAX_ROW_WIDTH

    return [(s, None if rows is None else rows[:, :MAX_ROW_WIDTH]) for s, rows in tables]


def row_width(loaded: LoadedConfig) -> int:
    """Entries per forwarding row the director is built for: K, or upstream's two columns."""
    fleet = loaded.config.fleet
    return 2 if fleet.table_semantics == "upstream" else fleet.table_candidates


def director_tables(loaded: LoadedConfig, health: HealthView | None = None
                    ) -> list[tuple[TableSpec, np.ndarray | None]]:
    """Every service's spec with its rows, ready for the director loader."""
    return for_dataplane(table_rows(loaded, health))
