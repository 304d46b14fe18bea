"""The rendezvous top-k in numpy, vectorised over all 65,536 rows at once.

A second, independent implementation of the C extension's job: tests cross-check the two
on whole tables (the pure-Python reference is too slow for that), and the builder falls
back to it when the extension is not compiled (and uses it for the few rows that need a
ranking of a subset of backends). It loops over backends in table order and keeps a
running top-k per row, inserting a new backend behind every entry of equal or lower rank,
so ties resolve to the earlier backend without extra work, matching the C code's
(rank, index) order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glb_agent.table.spec import TABLE_ROWS

_U64 = np.uint64
_INIT = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573)


def _rotl(x: np.ndarray, bits: int, tmp: np.ndarray) -> None:
    np.left_shift(x, _U64(bits), out=tmp)
    np.right_shift(x, _U64(64 - bits), out=x)
    np.bitwise_or(x, tmp, out=x)


def _sipround(v: list[np.ndarray], tmp: np.ndarray) -> None:
    v0, v1, v2, v3 = v
    v0 += v1
    _rotl(v1, 13, tmp)
    v1 ^= v0
    _rotl(v0, 32, tmp)
    v2 += v3
    _rotl(v3, 16, tmp)
    v3 ^= v2
    v0 += v3
    _rotl(v3, 21, tmp)
    v3 ^= v0
    v2 += v1
    _rotl(v1, 17, tmp)
    v1 ^= v2
    _rotl(v2, 32, tmp)


def _compress(v: list[np.ndarray], m: np.ndarray | np.uint64, tmp: np.ndarray) -> None:
    v[3] ^= m
    _sipround(v, tmp)
    _sipround(v, tmp)
    v[0] ^= m


def _finish(v: list[np.ndarray], tmp: np.ndarray) -> np.ndarray:
    v[2] ^= _U64(0xFF)
    for _ in range(4):
        _sipround(v, tmp)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def _row_states(seed: bytes, rows: np.ndarray) -> list[np.ndarray]:
    """SipHash state of every row after the first block (that block is the row's hash)."""
    k0 = _U64(int.from_bytes(seed[:8], "little"))
    k1 = _U64(int.from_bytes(seed[8:], "little"))
    keys = (k0, k1, k0, k1)

    def fresh() -> list[np.ndarray]:
        return [np.full(rows.shape, _U64(c) ^ k, dtype=np.uint64) for c, k in zip(_INIT, keys, strict=True)]

    tmp = np.empty(rows.shape, dtype=np.uint64)
    # Big-endian u32 row number read as a little-endian block, length 4 in the top byte.
    first = rows.astype(np.uint32).byteswap().astype(np.uint64) | _U64(4 << 56)
    v = fresh()
    _compress(v, first, tmp)
    row_hash = _finish(v, tmp)
    v = fresh()
    _compress(v, row_hash, tmp)
    return v


def _blocks(addr: bytes) -> list[np.uint64]:
    """The message blocks after the row hash: what one backend contributes."""
    if len(addr) == 4:
        return [_U64(int.from_bytes(addr, "little") | (12 << 56))]
    lo, hi = int.from_bytes(addr[:8], "little"), int.from_bytes(addr[8:], "little")
    return [_U64(lo), _U64(hi), _U64(24 << 56)]


def topk_numpy(
    seed: bytes,
    addrs: Sequence[bytes],
    index: Sequence[int],
    k: int,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """(len(rows), k) uint32: index[] of the k lowest-ranked addresses, best first.

    ``addrs`` are packed IPv4/IPv6 addresses in table order; ``index`` the value to store
    for each; ``k`` is at most ``len(addrs)``.
    """
    if not addrs or len(addrs) != len(index):
        raise ValueError("need one index per address and at least one address")
    if not 1 <= k <= len(addrs):
        raise ValueError(f"k={k} must be 1..{len(addrs)} (the number of addresses)")
    rows = np.arange(TABLE_ROWS, dtype=np.uint32) if rows is None else np.asarray(rows)
    state = _row_states(seed, rows)
    tmp = np.empty(rows.shape, dtype=np.uint64)
    best = np.full((k, rows.size), np.iinfo(np.uint64).max, dtype=np.uint64)
    out = np.zeros((k, rows.size), dtype=np.uint32)
    for pos, (addr, idx) in enumerate(zip(addrs, index, strict=True)):
        v = [s.copy() for s in state]
        for m in _blocks(addr):
            _compress(v, m, tmp)
        rank = _finish(v, tmp).byteswap()
        # Where the new backend goes: behind every kept entry ranked lower or equal (an
        # equal rank belongs to an earlier backend); the first ``pos`` slots are real.
        filled = min(pos, k)
        at = (best[:filled] <= rank).sum(axis=0) if filled else np.zeros(rows.size, dtype=np.intp)
        for p in range(min(pos, k - 1), -1, -1):  # shift down from the bottom, then insert
            if p > 0:
                moved = at < p
                best[p] = np.where(moved, best[p - 1], best[p])
                out[p] = np.where(moved, out[p - 1], out[p])
            put = at == p
            best[p] = np.where(put, rank, best[p])
            out[p] = np.where(put, idx, out[p])
    return np.ascontiguousarray(out.T)
