"""The in-memory description of one forwarding table, independent of where it came from.

Both the YAML config layer and upstream's forwarding-table JSON reader produce these, and
the builder, the binary writer and the data plane consume them, so they are the one
contract between those layers. Order matters: a backend's index in ``backends`` is the
index the 65,536 rows refer to, exactly as in upstream's binary file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
BackendState = Literal["active", "draining", "filling", "inactive"]
Protocol = Literal["tcp", "udp"]
# "upstream": GLB's (primary, secondary) row and its swap rule, for fleets that share rows
# with upstream glb-director; "candidates": K ranked candidates and the send order of
# send_order.py (first usable, draining behind it, unhealthy at the end).
Semantics = Literal["candidates", "upstream"]

TABLE_ROWS = 0x10000
UPSTREAM_MAX_BACKENDS = 0x100
UPSTREAM_MAX_BINDS = 0x100
MAX_CANDIDATES = 8  # the proxy carries at most 8 proxies in a GUE hop list
DEFAULT_CANDIDATES = 4


@dataclass(frozen=True)
class Backend:
    """A proxy as one table sees it; ``healthy`` is the health checker's current view."""

    ip: IPAddress
    state: BackendState = "active"
    healthy: bool = True
    # upstream's JSON carries {"http": port, "gue": port}; kept so JSON round-trips.
    healthchecks: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Bind:
    """Traffic the table serves: a VIP address or prefix, a protocol and a port range."""

    network: IPNetwork
    proto: Protocol
    port_start: int
    port_end: int
    # The address as the source wrote it when it has host bits set under the prefix
    # (e.g. "fdb4:98ce:52d4::42/64"): upstream's binary stores it unmasked, so a
    # byte-compatible writer needs it. None means ``network.network_address``.
    address: IPAddress | None = None

    @property
    def stored_address(self) -> IPAddress:
        """The address written into the binary table's bind entry."""
        return self.address if self.address is not None else self.network.network_address


@dataclass(frozen=True)
class TableSpec:
    """Everything needed to build and serialise one table (one GLB service)."""

    name: str
    hash_key: bytes  # 16 bytes: SipHash key for the packet hash on the director
    seed: bytes  # 16 bytes: SipHash key for the rendezvous ranking of backends
    binds: tuple[Bind, ...] = ()
    backends: tuple[Backend, ...] = field(default_factory=tuple)
    # How rows are built. Upstream's JSON and binary formats carry neither, so tables read
    # from them are upstream's; glb.yml sets both from fleet.table_semantics/_candidates.
    semantics: Semantics = "upstream"
    candidates: int = 2  # K: ranked candidates per row (upstream: always 2)

    @property
    def available(self) -> int:
        """Backends that can appear in rows (every state but inactive)."""
        return sum(1 for b in self.backends if b.state != "inactive")

    @property
    def width(self) -> int:
        """Columns of this table's send-order rows: 2 for upstream (one backend fills both,
        as upstream does), else K capped by the available backends."""
        if self.semantics == "upstream":
            return 2
        return max(1, min(self.candidates, self.available))
