"""One forwarding-table row the slow, literal way: hash every backend, sort, then swap.

This is upstream's algorithm written as plainly as possible on top of the pure-Python
SipHash, including the failover swap, so tests can check the fast builders row by row
without trusting any of their shortcuts (precomputed states, running top-2, grouping
IPv4 and IPv6 candidates). Far too slow for whole tables: use it on a handful of rows.
"""

from __future__ import annotations

from glb_agent.table.siphash import siphash24
from glb_agent.table.spec import TABLE_ROWS, TableSpec


def rank(seed: bytes, row: int, packed_ip: bytes) -> int:
    """Upstream sorts by the hash bytes read big-endian (it byte-swaps the LE output)."""
    row_hash = siphash24(seed, row.to_bytes(4, "big"))
    return int.from_bytes(siphash24(seed, row_hash + packed_ip), "big")


def reference_row(spec: TableSpec, row: int) -> tuple[int, int]:
    """(primary, secondary) backend indices for ``row`` of ``spec``."""
    if not 0 <= row < TABLE_ROWS:
        raise ValueError(f"row {row} outside 0..{TABLE_ROWS - 1}")
    ranked = sorted(
        (rank(spec.seed, row, b.ip.packed), i) for i, b in enumerate(spec.backends) if b.state != "inactive"
    )
    if not ranked:
        raise ValueError(f"table {spec.name!r} has no available backend")
    first = ranked[0][1]
    second = ranked[1][1] if len(ranked) > 1 else first
    p, s = spec.backends[first], spec.backends[second]
    if (p.state == "draining" or not p.healthy) and s.state == "active":
        first, second = second, first
    return first, second
