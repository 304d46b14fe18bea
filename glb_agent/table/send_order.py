"""From a row's ranked candidates to its send order: where a flow goes, and which proxies
its GUE hop list names for second chance.

The ranking (rendezvous.py) depends only on the seed and the backend addresses, so it is
the same on every director; the send order adds states and health, which every director
also shares (states from the YAML, health from each one's own checker). Two semantics:

``upstream``: upstream GLB's two columns and its swap rule, kept bit-exact for fleets that
mix our directors with upstream ones: a draining or unhealthy primary yields to the
secondary only if the secondary's *state* is ``active`` (its health is not looked at).

``candidates``: K candidates in rank order, rearranged so that

1. the first *usable* candidate (healthy, and active or filling) is the destination;
2. the other healthy candidates follow in rank order -- draining ones thus stay behind the
   destination, so their connections finish through second chance;
3. unhealthy candidates go to the end, in rank order, but stay: a false-positive health
   check must not break the connections they still hold;
4. inactive backends are never candidates (the ranking skips them);
5. a row without a usable candidate sends new flows to the best-ranked usable backend of
   the whole table (as if K were unlimited), followed by its candidates as above; then the
   row holds K + 1 proxies and the worst-ranked candidate drops out, since the width is K.
   With no usable backend anywhere, a healthy (draining) candidate leads, else the
   best-ranked healthy backend of the table; with no healthy backend at all the rank
   order stands -- there is nowhere better to send to.

Rows are integer arrays of backend indices (into ``spec.backends``), one row per hash
value, entry 0 the destination; -1 pads rows narrower than the array (never produced by
these builders, but accepted by consumers, as the data-plane contract allows it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from glb_agent.table.spec import TableSpec

USABLE_STATES = ("active", "filling")

# best_of(mask, rows): per row in ``rows``, the index of the best-ranked backend among those
# with mask[i] (and not inactive), or None when no backend has the mask set.
BestOf = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]


def health_arrays(spec: TableSpec) -> tuple[np.ndarray, np.ndarray]:
    """(healthy, usable) per backend index; an inactive backend is neither (it is in no
    row, so it can be no row's destination either)."""
    available = np.array([b.state != "inactive" for b in spec.backends], dtype=bool)
    healthy = available & np.array([b.healthy for b in spec.backends], dtype=bool)
    usable = healthy & np.array([b.state in USABLE_STATES for b in spec.backends], dtype=bool)
    return healthy, usable


def upstream_swap(spec: TableSpec, top2: np.ndarray) -> np.ndarray:
    """Upstream's swap, in place: a bad primary yields to an ``active`` secondary."""
    bad = np.array([b.state == "draining" or not b.healthy for b in spec.backends], dtype=bool)
    active = np.array([b.state == "active" for b in spec.backends], dtype=bool)
    swap = bad[top2[:, 0]] & active[top2[:, 1]]
    top2[swap] = top2[swap][:, ::-1]
    return top2


def upstream_rows(spec: TableSpec, ranked: np.ndarray) -> np.ndarray:
    """(65536, 2) int32 from ranked candidates (one column when only one is available:
    upstream then fills both columns with it)."""
    top2 = np.empty((ranked.shape[0], 2), dtype=np.int32)
    top2[:, 0] = ranked[:, 0]
    top2[:, 1] = ranked[:, 1] if ranked.shape[1] > 1 else ranked[:, 0]
    return upstream_swap(spec, top2)


def candidates_rows(spec: TableSpec, ranked: np.ndarray, best_of: BestOf) -> np.ndarray:
    """Send orders (R, K) int32 from ranked candidates (R, K), by the rules of the module
    docstring. ``best_of`` ranks a subset of the table for the rows that need rule 5."""
    healthy, usable = health_arrays(spec)
    out = ranked.astype(np.int32)
    if usable.all():
        return out  # the common case: every candidate usable, the rank order is the send order
    k = ranked.shape[1]
    h, u = healthy[out], usable[out]
    has_usable = u.any(axis=1)
    # Class 0: the destination, 1: other healthy, 2: unhealthy; rank order within a class.
    cls = np.where(h, 1, 2)
    first = np.argmax(u, axis=1)
    rows_u = np.flatnonzero(has_usable)
    cls[rows_u, first[rows_u]] = 0
    # Only rows whose classes are out of order need sorting (most rows are in rank order).
    moved = np.flatnonzero(has_usable & ((cls[:, 0] != 0) | (np.diff(cls[:, 1:], axis=1) < 0).any(axis=1)))
    if moved.size:
        order = np.argsort(cls[moved] * k + np.arange(k), axis=1, kind="stable")
        out[moved] = np.take_along_axis(out[moved], order, axis=1)

    fb = np.flatnonzero(~has_usable)
    if fb.size:
        cands = ranked[fb].astype(np.int32)
        out[fb] = _fallback_rows(cands, fb, h[fb], healthy, usable, best_of)
    return out


def _fallback_rows(cands: np.ndarray, rows: np.ndarray, h: np.ndarray, healthy: np.ndarray,
                   usable: np.ndarray, best_of: BestOf) -> np.ndarray:
    """Rule 5 for the rows whose candidates include no usable backend."""
    n, k = cands.shape
    dest = best_of(usable, rows) if usable.any() else None
    if dest is None:
        # Nobody takes new flows anywhere: a healthy candidate, else any healthy backend.
        has_h = h.any(axis=1)
        dest = np.full(n, -1, dtype=np.int64)
        dest[has_h] = cands[has_h, np.argmax(h[has_h], axis=1)]
        rest = np.flatnonzero(~has_h)
        if rest.size and healthy.any():
            dest[rest] = best_of(healthy, rows[rest])
    dest = np.asarray(dest, dtype=np.int32)
    cls = np.where(h, 1, 2)
    key = cls * k + np.arange(k)
    key = np.where(cands == dest[:, None], 3 * k, key)  # the destination is not repeated
    behind = np.take_along_axis(cands, np.argsort(key, axis=1, kind="stable"), axis=1)
    out = np.concatenate([dest[:, None], behind[:, : k - 1]], axis=1)
    none = dest < 0  # no healthy backend at all: keep the rank order
    out[none] = cands[none]
    return out


def two_columns(rows: np.ndarray) -> np.ndarray:
    """Upstream's (primary, secondary) view of send-order rows: the first two entries; a
    row with only one proxy repeats it, as upstream's own builder does."""
    arr = np.asarray(rows)
    first = arr[:, 0]
    second = arr[:, 1] if arr.shape[1] > 1 else first
    second = np.where(second < 0, first, second)
    return np.stack([first, second], axis=1)
