"""One forwarding-table row the slow, literal way: hash every backend, sort, then order.

This is the row algorithm written as plainly as possible on top of the pure-Python
SipHash -- upstream's swap and the ``candidates`` send order (send_order.py's rules, each
one a line here) -- so tests can check the fast builders row by row without trusting any
of their shortcuts (precomputed states, running top-k, grouping IPv4 and IPv6 candidates,
vectorised class sorting). Far too slow for whole tables: use it on a handful of rows.
"""

from __future__ import annotations

from glb_agent.table.siphash import siphash24
from glb_agent.table.spec import TABLE_ROWS, TableSpec


def rank(seed: bytes, row: int, packed_ip: bytes) -> int:
    """Upstream sorts by the hash bytes read big-endian (it byte-swaps the LE output)."""
    row_hash = siphash24(seed, row.to_bytes(4, "big"))
    return int.from_bytes(siphash24(seed, row_hash + packed_ip), "big")


def ranked(spec: TableSpec, row: int) -> list[int]:
    """Every available backend's index for ``row``, best first (ties: table order)."""
    if not 0 <= row < TABLE_ROWS:
        raise ValueError(f"row {row} outside 0..{TABLE_ROWS - 1}")
    order = sorted(
        (rank(spec.seed, row, b.ip.packed), i) for i, b in enumerate(spec.backends) if b.state != "inactive"
    )
    if not order:
        raise ValueError(f"table {spec.name!r} has no available backend")
    return [i for _, i in order]


def reference_row(spec: TableSpec, row: int) -> tuple[int, int]:
    """(primary, secondary) backend indices for ``row`` of ``spec``, upstream's way."""
    everyone = ranked(spec, row)
    first = everyone[0]
    second = everyone[1] if len(everyone) > 1 else first
    p, s = spec.backends[first], spec.backends[second]
    if (p.state == "draining" or not p.healthy) and s.state == "active":
        first, second = second, first
    return first, second


def reference_send_order(spec: TableSpec, row: int) -> list[int]:
    """The row's send order under ``spec.semantics`` (destination first)."""
    if spec.semantics == "upstream":
        return list(reference_row(spec, row))
    everyone = ranked(spec, row)
    cands = everyone[: spec.candidates]

    def usable(i: int) -> bool:
        return spec.backends[i].healthy and spec.backends[i].state in ("active", "filling")

    def healthy(i: int) -> bool:
        return spec.backends[i].healthy

    dest = None
    for pool, wanted in ((cands, usable), (everyone, usable), (cands, healthy), (everyone, healthy)):
        # the first usable candidate, else the table's best usable, else a healthy
        # (draining) candidate, else the table's best healthy backend
        dest = next((i for i in pool if wanted(i)), None)
        if dest is not None:
            break
    if dest is None:
        return cands  # nothing is healthy: the rank order stands
    rest = [i for i in cands if i != dest]
    order = [dest] + [i for i in rest if healthy(i)] + [i for i in rest if not healthy(i)]
    return order[: len(cands)]
