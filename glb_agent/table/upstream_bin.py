"""Upstream's ``forwarding_table.bin``, format version 2: what directors load.

Layout (integers little-endian, addresses in network order)::

    "GLBD"
    header: u32 file_fmt_ver=2, num_tables, table_entries=0x10000,
            max_num_backends, max_num_binds=0x100
    per table:
        u32 num_backends, then max_num_backends x
            {u32 family (1 IPv4, 2 IPv6), 16-byte address, u16 state, u16 health}
        u32 num_binds, then max_num_binds x
            {u32 family, 16-byte address, u16 ip_bits, u16 port_start, u16 port_end,
             u8 proto, u8 reserved}
        16-byte hash_key
        0x10000 x {u32 primary, u32 secondary}

State is 0 filling, 1 active, 2 draining *or* inactive; health is 1 up, 0 down. The
seed is not stored (directors only need the rows). Unused entries are zero. IPv4
addresses take the first 4 bytes of the 16.

max_num_backends is 256, as upstream writes it, unless some table has more backends;
then it is the smallest power of two that fits them all. Our data plane reads that;
upstream's glb-director cannot (it insists on 256), so such files are ours only.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glb_agent.errors import InputError
from glb_agent.table.send_order import two_columns
from glb_agent.table.spec import (
    TABLE_ROWS,
    UPSTREAM_MAX_BACKENDS,
    UPSTREAM_MAX_BINDS,
    Backend,
    Bind,
    IPAddress,
    TableSpec,
)
from glb_agent.util.files import write_atomic

MAGIC = b"GLBD"
FORMAT_VERSION = 2
_HEADER = struct.Struct("<5I")
_BACKEND = struct.Struct("<I16sHH")
_BIND = struct.Struct("<I16sHHHBB")
_COUNT = struct.Struct("<I")
_ROWS_DTYPE = np.dtype("<u4")
FAMILY = {4: 1, 6: 2}
_VERSION_OF_FAMILY = {1: 4, 2: 6}
STATE_CODE = {"filling": 0, "active": 1, "draining": 2, "inactive": 2}
PROTO_CODE = {"tcp": 6, "udp": 17}
_PROTO_NAME = {v: k for k, v in PROTO_CODE.items()}
HASH_KEY_SIZE = 16
# A table needs at least one backend in the header, and we stop far before sizes that
# could only come from a corrupt header (2**20 backends is 24 MiB per table).
_MAX_BACKENDS_LIMIT = 1 << 20


@dataclass(frozen=True)
class BinTable:
    """One table read back: ``spec.seed`` is b"" and ``spec.name`` is "" (not stored)."""

    spec: TableSpec
    rows: np.ndarray


@dataclass(frozen=True)
class BinFile:
    tables: tuple[BinTable, ...]
    max_num_backends: int
    max_num_binds: int

    @property
    def upstream_compatible(self) -> bool:
        """Whether upstream's glb-director would load it (it only knows 256 backends)."""
        return self.max_num_backends == UPSTREAM_MAX_BACKENDS


def max_backends_for(specs: list[TableSpec] | tuple[TableSpec, ...]) -> int:
    """256 like upstream, or the smallest power of two that holds the largest table."""
    most = max((len(s.backends) for s in specs), default=0)
    size = UPSTREAM_MAX_BACKENDS
    while size < most:
        size *= 2
    return size


def _table_size(max_backends: int, max_binds: int) -> int:
    return (
        _COUNT.size * 2
        + _BACKEND.size * max_backends
        + _BIND.size * max_binds
        + HASH_KEY_SIZE
        + TABLE_ROWS * 2 * _ROWS_DTYPE.itemsize
    )


def _addr16(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    return ip.packed.ljust(16, b"\0")


def encode(specs: list[TableSpec] | tuple[TableSpec, ...], rows: list[np.ndarray]) -> bytes:
    """The whole file. ``rows[i]`` are table i's send-order rows, (65536, W) backend
    indices; the format stores upstream's two columns, the first two of each send order
    (send_order.two_columns)."""
    if len(specs) != len(rows):
        raise ValueError(f"{len(specs)} specs but {len(rows)} row arrays")
    max_backends = max_backends_for(specs)
    parts = [MAGIC, _HEADER.pack(FORMAT_VERSION, len(specs), TABLE_ROWS, max_backends, UPSTREAM_MAX_BINDS)]
    for spec, table_rows in zip(specs, rows, strict=True):
        where = f"table {spec.name!r}"
        if len(spec.binds) > UPSTREAM_MAX_BINDS:
            raise InputError(f"{len(spec.binds)} binds, the format holds {UPSTREAM_MAX_BINDS}", where=where)
        if len(spec.hash_key) != HASH_KEY_SIZE:
            raise InputError(f"hash_key must be {HASH_KEY_SIZE} bytes", where=where)
        arr = np.asarray(table_rows)
        if arr.ndim != 2 or arr.shape[0] != TABLE_ROWS or arr.shape[1] < 1:
            raise ValueError(f"{where}: rows must have shape ({TABLE_ROWS}, W), got {arr.shape}")
        arr = two_columns(arr)
        if len(spec.backends) == 0 or int(arr.max()) >= len(spec.backends) or int(arr.min()) < 0:
            raise ValueError(f"{where}: a row points past the {len(spec.backends)} backends")

        parts.append(_COUNT.pack(len(spec.backends)))
        for b in spec.backends:
            health = 1 if b.healthy else 0
            parts.append(_BACKEND.pack(FAMILY[b.ip.version], _addr16(b.ip), STATE_CODE[b.state], health))
        parts.append(bytes(_BACKEND.size * (max_backends - len(spec.backends))))

        parts.append(_COUNT.pack(len(spec.binds)))
        for bind in spec.binds:
            addr = bind.stored_address
            parts.append(
                _BIND.pack(
                    FAMILY[addr.version],
                    _addr16(addr),
                    bind.network.prefixlen,
                    bind.port_start,
                    bind.port_end,
                    PROTO_CODE[bind.proto],
                    0,
                )
            )
        parts.append(bytes(_BIND.size * (UPSTREAM_MAX_BINDS - len(spec.binds))))
        parts.append(spec.hash_key)
        parts.append(arr.astype(_ROWS_DTYPE, copy=False).tobytes())
    return b"".join(parts)


def write(path: str | Path, specs: list[TableSpec] | tuple[TableSpec, ...], rows: list[np.ndarray]) -> bool:
    """Atomically replace ``path`` (temp file + fsync + rename, mode 0644).

    Returns False when the file already held exactly these bytes (nothing touched), so
    a director watching the mtime does not reload for nothing.
    """
    return write_atomic(path, encode(specs, rows))


class _Cursor:
    """Reads fields in order, reporting the byte offset of whatever is wrong."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source
        self.pos = 0

    def fail(self, offset: int, message: str) -> InputError:
        return InputError(message, where=f"{self.source}: byte {offset}")

    def take(self, st: struct.Struct) -> tuple:
        values = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return values


def _address(cur: _Cursor, family: int, raw: bytes, offset: int) -> IPAddress:
    version = _VERSION_OF_FAMILY.get(family)
    if version is None:
        raise cur.fail(offset, f"address family must be 1 (IPv4) or 2 (IPv6), got {family}")
    return ipaddress.ip_address(raw[:4] if version == 4 else raw)


def decode(data: bytes, source: str = "<bin>") -> BinFile:
    """Parse and validate a whole file; every problem is an InputError with its offset."""
    cur = _Cursor(data, source)
    head = len(MAGIC) + _HEADER.size
    if len(data) < head:
        raise cur.fail(len(data), f"file is {len(data)} bytes, shorter than the {head}-byte header")
    if data[:4] != MAGIC:
        raise cur.fail(0, f"magic is {data[:4]!r}, expected {MAGIC!r}: not a GLB forwarding table")
    cur.pos = len(MAGIC)
    version, num_tables, entries, max_backends, max_binds = cur.take(_HEADER)
    if version != FORMAT_VERSION:
        raise cur.fail(4, f"format version {version}, only {FORMAT_VERSION} is supported")
    if entries != TABLE_ROWS:
        raise cur.fail(12, f"table_entries is {entries}, expected {TABLE_ROWS}")
    if not 1 <= max_backends <= _MAX_BACKENDS_LIMIT:
        raise cur.fail(16, f"max_num_backends {max_backends} is out of range")
    if not 1 <= max_binds <= _MAX_BACKENDS_LIMIT:
        raise cur.fail(20, f"max_num_binds {max_binds} is out of range")
    expected = head + num_tables * _table_size(max_backends, max_binds)
    if len(data) != expected:
        raise cur.fail(
            min(len(data), expected),
            f"file is {len(data)} bytes, but a header for {num_tables} tables of "
            f"{max_backends} backends means {expected}",
        )
    tables = tuple(_decode_table(cur, max_backends, max_binds) for _ in range(num_tables))
    return BinFile(tables, max_backends, max_binds)


def _decode_table(cur: _Cursor, max_backends: int, max_binds: int) -> BinTable:
    count_at = cur.pos
    (num_backends,) = cur.take(_COUNT)
    if num_backends > max_backends:
        raise cur.fail(count_at, f"num_backends {num_backends} exceeds max_num_backends {max_backends}")
    raw_backends = []
    for i in range(max_backends):
        at = cur.pos
        family, raw, state, health = cur.take(_BACKEND)
        if i >= num_backends:
            continue
        ip = _address(cur, family, raw, at)
        if state not in (0, 1, 2):
            raise cur.fail(at + 20, f"backend {i} state {state}, expected 0, 1 or 2")
        if health not in (0, 1):
            raise cur.fail(at + 22, f"backend {i} health {health}, expected 0 or 1")
        raw_backends.append((ip, state, health == 1))

    count_at = cur.pos
    (num_binds,) = cur.take(_COUNT)
    if num_binds > max_binds:
        raise cur.fail(count_at, f"num_binds {num_binds} exceeds max_num_binds {max_binds}")
    binds = []
    for i in range(max_binds):
        at = cur.pos
        family, raw, bits, port_start, port_end, proto, _reserved = cur.take(_BIND)
        if i >= num_binds:
            continue
        addr = _address(cur, family, raw, at)
        if bits > addr.max_prefixlen:
            raise cur.fail(at + 20, f"bind {i} prefix length {bits} exceeds {addr.max_prefixlen}")
        if proto not in _PROTO_NAME:
            raise cur.fail(at + 26, f"bind {i} protocol {proto}, expected 6 (tcp) or 17 (udp)")
        network = ipaddress.ip_network((addr, bits), strict=False)
        host = addr if addr != network.network_address else None
        binds.append(Bind(network, _PROTO_NAME[proto], port_start, port_end, host))  # type: ignore[arg-type]

    hash_key = cur.data[cur.pos : cur.pos + HASH_KEY_SIZE]
    cur.pos += HASH_KEY_SIZE
    rows_at = cur.pos
    rows = (
        np.frombuffer(cur.data, dtype=_ROWS_DTYPE, count=TABLE_ROWS * 2, offset=rows_at)
        .reshape(TABLE_ROWS, 2)
        .astype(np.uint32)
    )
    cur.pos += rows.nbytes
    if num_backends == 0:
        raise cur.fail(count_at, "table has no backends, yet its rows must point at one")
    bad = np.flatnonzero(rows.reshape(-1) >= num_backends)
    if bad.size:
        first = int(bad[0])
        raise cur.fail(
            rows_at + 4 * first,
            f"row {first // 2} points at backend {int(rows.reshape(-1)[first])}, "
            f"but the table has {num_backends}",
        )
    referenced = np.zeros(num_backends, dtype=bool)
    referenced[rows.reshape(-1)] = True
    backends = tuple(
        Backend(ip, _state_name(state, bool(referenced[i])), healthy)  # type: ignore[arg-type]
        for i, (ip, state, healthy) in enumerate(raw_backends)
    )
    spec = TableSpec(name="", hash_key=hash_key, seed=b"", binds=tuple(binds), backends=backends)
    return BinTable(spec, rows)


def _state_name(code: int, referenced: bool) -> str:
    """Code 2 is draining or inactive: only a draining backend can still appear in rows.

    A draining backend among N available holds about 2/N of the 65,536 row slots (as
    secondary, or as primary where the secondary is not active), so for any table up to
    thousands of backends one that no row mentions is inactive (P(miss) ~ e^(-131072/N)).
    """
    if code == 2:
        return "draining" if referenced else "inactive"
    return "filling" if code == 0 else "active"


def read(path: str | Path) -> BinFile:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", where=str(path)) from None
    return decode(data, str(path))
