"""Build the 65,536 (primary, secondary) rows of a table, as upstream's build-config does.

Row r ranks every available backend (state other than ``inactive``, in table order) by
``bswap64(SipHash-2-4(seed, SipHash-2-4(seed, be32(r)) || ip))`` and takes the two
lowest. Upstream then swaps the pair when the primary is draining or unhealthy and the
secondary's *state* is ``active`` -- it never looks at the secondary's health, and we
reproduce that quirk exactly, because directors running upstream and ours side by side
must send a flow to the same proxy. Row values index the full backends list (inactive
ones included), as in the binary file.

Decisions where upstream's behaviour is undefined (it reads past its candidate array):
one available backend fills both columns; none is an ``InputError`` naming the table.

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
from glb_agent.table.rendezvous_np import top2_numpy
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
    """A table's available backends, in the shapes both builders want."""

    def __init__(self, spec: TableSpec) -> None:
        if len(spec.seed) != 16:
            raise InputError(
                f"seed must be 16 bytes, got {len(spec.seed)} (binary tables do not store "
                "the seed, so their rows cannot be rebuilt)",
                where=f"table {spec.name!r}",
            )
        avail = [(i, b) for i, b in enumerate(spec.backends) if b.state != "inactive"]
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


def apply_failover_swap(spec: TableSpec, top2: np.ndarray) -> np.ndarray:
    """Upstream's swap, in place: a bad primary yields to an ``active`` secondary."""
    bad = np.array([b.state == "draining" or not b.healthy for b in spec.backends], dtype=bool)
    active = np.array([b.state == "active" for b in spec.backends], dtype=bool)
    swap = bad[top2[:, 0]] & active[top2[:, 1]]
    top2[swap] = top2[swap][:, ::-1]
    return top2


def _c_jobs(cand: _Candidates, out: np.ndarray, parts: int) -> list[tuple]:
    step = -(-TABLE_ROWS // parts)
    return [
        (cand.seed, cand.v4, cand.v6, cand.grouped_index, out, lo, min(lo + step, TABLE_ROWS))
        for lo in range(0, TABLE_ROWS, step)
    ]


def build_all(specs: Sequence[TableSpec], *, impl: Impl = "auto") -> list[np.ndarray]:
    """Rows of every table: a (65536, 2) uint32 array each, (primary, secondary) indices."""
    cands = [_Candidates(s) for s in specs]  # validate everything before spending CPU
    use_c = impl == "c" or (impl == "auto" and _rendezvous is not None)
    if impl == "c" and _rendezvous is None:
        raise RuntimeError("the C table builder is not compiled in this installation")
    if not use_c:
        results = [top2_numpy(c.seed, c.addrs, c.index) for c in cands]
    else:
        results = [np.empty((TABLE_ROWS, 2), dtype=np.uint32) for _ in cands]
        workers = _workers()
        parts = max(1, min(workers, TABLE_ROWS // _MIN_ROWS_PER_JOB))
        jobs = [j for c, out in zip(cands, results, strict=True) for j in _c_jobs(c, out, parts)]
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                _rendezvous.top2(*job)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="glb-table") as ex:
                for fut in [ex.submit(_rendezvous.top2, *job) for job in jobs]:
                    fut.result()
    return [apply_failover_swap(s, r) for s, r in zip(specs, results, strict=True)]


def build_rows(spec: TableSpec, *, impl: Impl = "auto") -> np.ndarray:
    """Rows of one table; see the module docstring for the exact semantics."""
    return build_all([spec], impl=impl)[0]
