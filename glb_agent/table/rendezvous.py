"""Build the 65,536 rows of a table: rank the backends per row, then order each row.

Row r ranks every available backend (state other than ``inactive``, in table order) by
``bswap64(SipHash-2-4(seed, SipHash-2-4(seed, be32(r)) || ip))``, lowest first, exactly as
upstream's build-config does, and keeps the K lowest (K = 2 for ``upstream`` semantics,
else the table's ``candidates`` capped by the available backends). send_order.py then turns
the candidates into the row's send order: upstream's swap rule, reproduced exactly
(including its quirk of never looking at the secondary's health, because directors running
upstream and ours side by side must send a flow to the same proxy), or the ``candidates``
rules. Row values index the full backends list (inactive ones included), as in the binary
file.

Decisions where upstream's behaviour is undefined (it reads past its candidate array):
one available backend fills both upstream columns; none is an ``InputError`` naming the
table.

The ranking runs in the C extension (``_rendezvous.c``), split across threads with the
GIL released; if it is not compiled we fall back to numpy and log a warning, since that
is ~10-20x slower but gives the same bytes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np

from glb_agent.errors import InputError
from glb_agent.table.rendezvous_np import topk_numpy
from glb_agent.table.send_order import candidates_rows, upstream_rows, upstream_swap
from glb_agent.table.spec import TABLE_ROWS, TableSpec

log = logging.getLogger(__name__)

try:
    from glb_agent.table import _rendezvous
except ImportError as exc:  # pragma: no cover - depends on how the package was installed
    _rendezvous = None
    log.warning(
        "C table builder not available (%s); using the numpy fallback, ~15x slower. "
        "Reinstall with 'pip install -e .' (needs python3-dev and a C compiler).",
        exc,
    )

Impl = Literal["auto", "c", "numpy"]
# Below this many rows per thread, thread start-up costs more than it saves.
_MIN_ROWS_PER_JOB = 4096


def have_c_extension() -> bool:
    return _rendezvous is not None


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class _Candidates:
    """A table's available backends (or those of ``mask``), in the shapes both builders want."""

    def __init__(self, spec: TableSpec, mask: np.ndarray | None = None) -> None:
        if len(spec.seed) != 16:
            raise InputError(
                f"seed must be 16 bytes, got {len(spec.seed)} (binary tables do not store "
                "the seed, so their rows cannot be rebuilt)",
                where=f"table {spec.name!r}",
            )
        avail = [(i, b) for i, b in enumerate(spec.backends)
                 if b.state != "inactive" and (mask is None or mask[i])]
        if not avail:
            raise InputError(
                "no available backend (every backend is inactive, or there are none); "
                "a table needs at least one",
                where=f"table {spec.name!r}",
            )
        self.seed = spec.seed
        self.index = [i for i, _ in avail]
        self.addrs = [b.ip.packed for _, b in avail]
        v4 = [(i, a) for i, a in zip(self.index, self.addrs, strict=True) if len(a) == 4]
        v6 = [(i, a) for i, a in zip(self.index, self.addrs, strict=True) if len(a) == 16]
        self.v4 = b"".join(a for _, a in v4)
        self.v6 = b"".join(a for _, a in v6)
        # The C code wants IPv4 candidates first, then IPv6; index says which is which.
        self.grouped_index = np.array([i for i, _ in v4 + v6], dtype=np.uint32)


# Kept under its old name: the swap is upstream's policy, now in send_order.py.
apply_failover_swap = upstream_swap


def ranking_width(spec: TableSpec) -> int:
    """Candidates to rank per row: 2 for upstream (1 if only one is available), else K."""
    avail = spec.available
    if spec.semantics == "upstream":
        return min(2, max(avail, 1))
    return spec.width


def _c_jobs(cand: _Candidates, out: np.ndarray, parts: int, k: int) -> list[tuple]:
    step = -(-TABLE_ROWS // parts)
    return [
        (cand.seed, cand.v4, cand.v6, cand.grouped_index, out, lo, min(lo + step, TABLE_ROWS), k)
        for lo in range(0, TABLE_ROWS, step)
    ]


def _use_c(impl: Impl) -> bool:
    if impl == "c" and _rendezvous is None:
        raise RuntimeError("the C table builder is not compiled in this installation")
    return impl == "c" or (impl == "auto" and _rendezvous is not None)


def _run_c(jobs: list[tuple]) -> None:
    workers = _workers()
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            _rendezvous.topk(*job)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="glb-table") as ex:
        for fut in [ex.submit(_rendezvous.topk, *job) for job in jobs]:
            fut.result()


def rank_all(specs: Sequence[TableSpec], *, impl: Impl = "auto") -> list[np.ndarray]:
    """Ranked candidates of every table: (65536, ranking_width) uint32 each, best first."""
    cands = [_Candidates(s) for s in specs]  # validate everything before spending CPU
    widths = [ranking_width(s) for s in specs]
    if not _use_c(impl):
        return [topk_numpy(c.seed, c.addrs, c.index, k) for c, k in zip(cands, widths, strict=True)]
    results = [np.empty((TABLE_ROWS, k), dtype=np.uint32) for k in widths]
    parts = max(1, min(_workers(), TABLE_ROWS // _MIN_ROWS_PER_JOB))
    _run_c([j for c, out, k in zip(cands, results, widths, strict=True) for j in _c_jobs(c, out, parts, k)])
    return results


def _best_of(spec: TableSpec, impl: Impl):
    """The best-ranked backend among a subset, for the rows of rule 5 (send_order.py)."""

    def best_of(mask: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        if not any(m and b.state != "inactive" for m, b in zip(mask, spec.backends, strict=True)):
            return None
        c = _Candidates(spec, mask)
        if _use_c(impl) and rows.size > _MIN_ROWS_PER_JOB:
            # Many rows: the whole table in C costs at most one more build and beats numpy.
            out = np.empty((TABLE_ROWS, 1), dtype=np.uint32)
            _run_c(_c_jobs(c, out, max(1, min(_workers(), TABLE_ROWS // _MIN_ROWS_PER_JOB)), 1))
            return out[rows, 0]
        return topk_numpy(c.seed, c.addrs, c.index, 1, rows)[:, 0]

    return best_of


def send_orders(spec: TableSpec, ranked: np.ndarray, *, impl: Impl = "auto") -> np.ndarray:
    """The send order of every row of ``spec`` from its ranked candidates."""
    if spec.semantics == "upstream":
        return upstream_rows(spec, ranked)
    return candidates_rows(spec, ranked, _best_of(spec, impl))


def build_all(specs: Sequence[TableSpec], *, impl: Impl = "auto") -> list[np.ndarray]:
    """Rows of every table: (65536, spec.width) int32 send orders of backend indices
    (upstream: (primary, secondary); candidates: destination first, then the hop list)."""
    ranked = rank_all(specs, impl=impl)
    return [send_orders(s, r, impl=impl) for s, r in zip(specs, ranked, strict=True)]


def build_rows(spec: TableSpec, *, impl: Impl = "auto") -> np.ndarray:
    """Rows of one table; see the module docstring for the exact semantics."""
    return build_all([spec], impl=impl)[0]
