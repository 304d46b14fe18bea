"""What the director program is compiled with and what its maps hold, in pure Python.

Kept apart from the loader so it can be tested without root or bcc: turning settings into
compile flags, table specs into bind entries (sorted, fragment-safe flags, keys), row
indices into backend addresses, and the per-CPU counter cells back into named numbers.
The byte layouts mirror ``bpf/include/director_defs.h``; the C side checks the sizes with
``_Static_assert``, and tests compare both.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glb_agent.dataplane.reasons import director_reasons
from glb_agent.errors import InputError
from glb_agent.table import siphash
from glb_agent.table.spec import TABLE_ROWS, Bind, TableSpec

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"  # glb_agent/bpf -> repo bpf/
DIRECTOR_C = BPF_DIR / "director.c"
INCLUDE_DIR = BPF_DIR / "include"

MAPS_VERSION = 3  # GLB_DIRECTOR_MAPS_VERSION in director_defs.h
HASH_FIELDS = ("src_addr", "dst_addr", "src_port", "dst_port")  # upstream's fixed order
GUE_BASE = 36  # outer IPv4 + UDP + GUE base + GLB private data, before the hop list
GUE_OVERHEAD = GUE_BASE + 4  # ... with one hop (upstream's packet)
GUE_MAX_HOPS = 8  # GLB_GUE_MAX_HOPS in glb_gue.h
MAX_ROW_WIDTH = 8  # GLB_ROW_WIDTH range in glb_table.h: 2..8

REASONS = director_reasons()  # enum glb_reason in bpf/include/glb_reasons.h, in index order
UNMATCHED = "_unmatched"  # counters of traffic no bind matched (not a valid service name)

BIND_FRAG_OK = 0x01
BIND4 = struct.Struct("<4s4sBBHHH4Q")  # struct glb_bind4
BIND6 = struct.Struct("<16s16sBBHHH4Q")  # struct glb_bind6
CTL = struct.Struct("<II")  # struct glb_ctl
STAT = struct.Struct("<QQ")  # struct glb_stat
ROW_DTYPE = np.dtype(">u4")  # struct glb_row: row_width IPv4 addresses (wire order), 0 = unused
_PROTO = {"tcp": 6, "udp": 17}
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class BuildOptions:
    """Everything the program is specialised on; two equal option sets give the same program."""

    source_ip: ipaddress.IPv4Address
    src_mac: str
    gateway_mac: str
    hash_fields: tuple[str, ...] = ("src_addr",)
    alt_hash_fields: tuple[str, ...] = ()  # migration source fields; () = none
    mtu: int = 1500
    max_tables: int = 16
    max_binds: int = 64
    ipv6: bool = True
    vlan: bool = True
    icmp: bool = True
    row_width: int = 4  # entries per row (K): the destination, then up to K - 1 hops

    def max_hops(self) -> int:
        """Most hops a packet carries: the row after its destination, and while hash fields
        migrate the whole row under the old fields too."""
        return self.row_width - 1 + (self.row_width if self.alt_hash_fields else 0)

    def validate(self) -> None:
        for name in ("src_mac", "gateway_mac"):
            mac = getattr(self, name)
            if not isinstance(mac, str) or not _MAC_RE.match(mac.lower()):
                raise InputError(f"{name} {mac!r} is not a MAC address like 02:00:00:00:00:01")
        if int(self.gateway_mac[:2], 16) & 1 or self.gateway_mac.strip("0:") == "":
            raise InputError(f"gateway_mac {self.gateway_mac} must be a unicast, non-zero MAC")
        if not isinstance(self.source_ip, ipaddress.IPv4Address):
            raise InputError(f"source_ip {self.source_ip!r} must be an IPv4 address (outer header)")
        if self.source_ip.is_unspecified or self.source_ip.is_multicast:
            raise InputError(f"source_ip {self.source_ip} cannot be a packet source")
        for name in ("hash_fields", "alt_hash_fields"):
            fields = getattr(self, name)
            unknown = [f for f in fields if f not in HASH_FIELDS]
            if unknown or len(set(fields)) != len(fields) or (not fields and name == "hash_fields"):
                raise InputError(f"{name} {list(fields)!r}: give one or more distinct "
                                 f"fields of {', '.join(HASH_FIELDS)}")
        if self.alt_hash_fields and set(self.alt_hash_fields) == set(self.hash_fields):
            raise InputError("alt_hash_fields equals hash_fields: nothing to migrate")
        if not (isinstance(self.row_width, int) and 2 <= self.row_width <= MAX_ROW_WIDTH):
            raise InputError(f"row_width {self.row_width!r} out of range 2-{MAX_ROW_WIDTH}")
        if self.max_hops() > GUE_MAX_HOPS:
            raise InputError(f"row_width {self.row_width} with alt_hash_fields makes {self.max_hops()} "
                             f"hops; a GUE hop list holds at most {GUE_MAX_HOPS}")
        if not 68 + GUE_OVERHEAD <= self.mtu <= 65535:
            raise InputError(f"mtu {self.mtu} out of range {68 + GUE_OVERHEAD}-65535")
        if not 1 <= self.max_tables <= 256:
            raise InputError(f"max_tables {self.max_tables} out of range 1-256")
        if not 1 <= self.max_binds <= 1024:
            raise InputError(f"max_binds {self.max_binds} out of range 1-1024")

    def cflags(self, pin_dir: Path | None) -> list[str]:
        """bcc cflags: every constant of the fast path, so it needs no configuration lookup."""
        src = self.source_ip.packed
        eth = bytes.fromhex(self.gateway_mac.replace(":", "")) + bytes.fromhex(self.src_mac.replace(":", ""))
        w = struct.unpack("<III", eth)
        # Constant words of the outer IPv4 header as little-endian loads of the wire bytes:
        # 0x4500, id 0, flags DF, TTL 64 + proto UDP, the source address halves.
        hdr = bytes([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]) + src
        csum_base = sum(struct.unpack("<8H", hdr))
        flags = [
            f"-I{INCLUDE_DIR}",
            f"-DGLB_SRC_IP={struct.unpack('<I', src)[0]}U",
            f"-DGLB_ETH_W0={w[0]}U",
            f"-DGLB_ETH_W1={w[1]}U",
            f"-DGLB_ETH_W2={w[2]}U",
            f"-DGLB_IP_CSUM_BASE={csum_base}U",
            f"-DGLB_MTU={self.mtu}",
            f"-DGLB_MAX_TABLES={self.max_tables}",
            f"-DGLB_MAX_BINDS={self.max_binds}",
            f"-DGLB_IPV6={int(self.ipv6)}",
            f"-DGLB_VLAN={int(self.vlan)}",
            f"-DGLB_ICMP={int(self.icmp)}",
        ]
        flags += [f"-DGLB_HASH_{f.upper()}={int(f in self.hash_fields)}" for f in HASH_FIELDS]
        flags.append(f"-DGLB_ROW_WIDTH={self.row_width}")
        if self.alt_hash_fields:
            flags.append("-DGLB_ALT_HASH=1")
            flags += [f"-DGLB_ALT_HASH_{f.upper()}={int(f in self.alt_hash_fields)}" for f in HASH_FIELDS]
        if pin_dir is not None:
            flags.append(f'-DGLB_PIN_DIR="{pin_dir}"')
        return flags

    def maps_signature(self) -> str:
        """Changes only when the maps' shapes change (then pinned maps cannot be reused).
        The 32768 was the size of director.c's glb_meta map, dropped unused (the bookkeeping
        is the loader's ``meta``); it stays in the string so running directors are adopted."""
        return _digest(f"maps-v{MAPS_VERSION}/{self.max_tables}/{self.max_binds}/32768/"
                       f"{self.row_width}")

    def program_signature(self, pin_dir: Path | None) -> str:
        """Changes when the program would differ: its sources or any compile flag."""
        h = hashlib.sha256()
        for path in [DIRECTOR_C, *sorted(INCLUDE_DIR.glob("*.h"))]:
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        h.update("\0".join(self.cflags(pin_dir)).encode())
        return h.hexdigest()[:32]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- tables -> map contents ----------------------------------------------------------------

@dataclass(frozen=True)
class CompiledTables:
    """A complete generation, validated and packed, ready to be written."""

    names: tuple[str, ...]
    binds4: list[tuple[Bind, int, TableSpec]]  # (bind, table index in names, spec)
    binds6: list[tuple[Bind, int, TableSpec]]
    rows: list[np.ndarray]  # per table: ROW_DTYPE (TABLE_ROWS, row_width) addresses, 0 = unused
    digests: tuple[str, ...]  # per table: digest of its rows


def sip_prefix(key: bytes) -> tuple[int, int, int, int]:
    """struct glb_sip for a 16-byte SipHash key: the part of SipHash-2-4 that is the same for
    every packet of a table (key XOR constants, then the first compression's opening v0/v1
    line), computed here once instead of on every packet."""
    v0, v1, v2, v3 = siphash.initial_state(key)
    return (*siphash.round_head(v0, v1), v2, v3)


def _bind_order(item: tuple[Bind, int, TableSpec]) -> tuple[int, int, int, str]:
    bind = item[0]
    # Most specific first: longest prefix, then narrowest port range; stable tie-break.
    return (-bind.network.prefixlen, bind.port_end - bind.port_start, bind.port_start, str(bind.network))


def _overlap(a: Bind, b: Bind) -> bool:
    return a.network.overlaps(b.network)


def _validate_spec(spec: TableSpec, rows: np.ndarray | None, where: str, width: int) -> np.ndarray:
    if not isinstance(spec, TableSpec):
        raise InputError(f"{where}: expected a TableSpec, got {type(spec).__name__}")
    if not isinstance(spec.hash_key, (bytes, bytearray)) or len(spec.hash_key) != 16:
        raise InputError(f"{where}: hash_key must be 16 bytes")
    for i, bind in enumerate(spec.binds):
        w = f"{where}: binds[{i}]"
        if not isinstance(bind.network, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            raise InputError(f"{w}: network {bind.network!r} is not an IP network")
        if bind.proto not in _PROTO:
            raise InputError(f"{w}: protocol {bind.proto!r} is not tcp or udp")
        if not (isinstance(bind.port_start, int) and isinstance(bind.port_end, int)
                and 0 <= bind.port_start <= bind.port_end <= 65535):
            raise InputError(f"{w}: port range {bind.port_start}-{bind.port_end} is invalid")
    for i, backend in enumerate(spec.backends):
        if not isinstance(backend.ip, ipaddress.IPv4Address):
            raise InputError(f"{where}: backends[{i}] {backend.ip}: backends must be IPv4 "
                             "(the GUE outer header is IPv4, as upstream)")
        if backend.ip.is_unspecified:
            raise InputError(f"{where}: backends[{i}] 0.0.0.0 is not a proxy address")
    if not spec.backends:
        return np.zeros((TABLE_ROWS, width), dtype=ROW_DTYPE)  # no backend: dropped, counted
    if rows is None:
        raise InputError(f"{where}: rows are required for a table with backends")
    return pack_rows(np.asarray(rows), np.array([int(b.ip) for b in spec.backends], dtype=np.uint32),
                     width, where)


def pack_rows(arr: np.ndarray, ips: np.ndarray, width: int, where: str) -> np.ndarray:
    """Send-order rows (TABLE_ROWS, W <= width) of backend indices, -1 padding at the end,
    as struct glb_row: the backends' IPv4 addresses in wire order, 0 where unused."""
    if (arr.ndim != 2 or arr.shape[0] != TABLE_ROWS or not 1 <= arr.shape[1] <= width
            or not np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{where}: rows must be an integer array of shape ({TABLE_ROWS}, 1-{width}) "
                         f"(the director's row width), got {arr.dtype} {arr.shape}")
    if arr.min() < -1 or arr.max() >= len(ips):
        raise InputError(f"{where}: rows refer to backend indices outside 0-{len(ips) - 1}")
    unused = arr < 0
    if unused[:, 0].any() or (unused[:, :-1] & ~unused[:, 1:]).any():
        bad = int(np.flatnonzero(unused[:, 0] | (unused[:, :-1] & ~unused[:, 1:]).any(axis=1))[0])
        raise InputError(f"{where}: row {bad}: -1 only pads the end of a row, after the destination")
    out = np.zeros((TABLE_ROWS, width), dtype=ROW_DTYPE)
    out[:, :arr.shape[1]] = np.where(unused, 0, ips[np.where(unused, 0, arr)])
    return out


def compile_tables(tables: Sequence[tuple[TableSpec, np.ndarray | None]], opts: BuildOptions
                   ) -> CompiledTables:
    """Validate a complete set of tables and pack it; raises InputError, touches nothing."""
    tables = list(tables)
    if len(tables) > opts.max_tables:
        raise InputError(f"{len(tables)} tables exceed max_tables={opts.max_tables}")
    names: list[str] = []
    rows: list[np.ndarray] = []
    b4: list[tuple[Bind, int, TableSpec]] = []
    b6: list[tuple[Bind, int, TableSpec]] = []
    for t, item in enumerate(tables):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise InputError(f"tables[{t}]: expected a (TableSpec, rows) pair")
        spec, table_rows = item
        where = f"table {getattr(spec, 'name', t)!r}"
        rows.append(_validate_spec(spec, table_rows, where, opts.row_width))
        if not spec.name or spec.name in names:
            raise InputError(f"{where}: table names must be non-empty and unique")
        names.append(spec.name)
        for bind in spec.binds:
            (b4 if bind.network.version == 4 else b6).append((bind, t, spec))
    for family, binds in ((4, b4), (6, b6)):
        if len(binds) > opts.max_binds:
            raise InputError(f"{len(binds)} IPv{family} binds exceed max_binds={opts.max_binds}")
        if family == 6 and binds and not opts.ipv6:
            raise InputError("IPv6 binds given but the director was built without IPv6")
        for i, (a, ta, sa) in enumerate(binds):
            for b, tb, sb in binds[:i]:
                if (ta != tb and a.proto == b.proto and a.network == b.network
                        and a.port_start <= b.port_end and b.port_start <= a.port_end):
                    raise InputError(f"bind {a.network} {a.proto} {a.port_start}-{a.port_end} of "
                                     f"table {sa.name!r} overlaps table {sb.name!r}")
        binds.sort(key=_bind_order)
    digests = tuple(hashlib.sha256(r.tobytes()).hexdigest()[:32] for r in rows)
    return CompiledTables(tuple(names), b4, b6, rows, digests)


def frag_ok(bind: Bind, table: int, binds: Sequence[tuple[Bind, int, TableSpec]]) -> bool:
    """True if every bind overlapping ``bind`` for its protocol belongs to the same table, so a
    fragment (no ports) is attributed to the right table by address and protocol alone."""
    return all(t == table for b, t, _ in binds if b.proto == bind.proto and _overlap(b, bind))


def pack_binds(binds: Sequence[tuple[Bind, int, TableSpec]], slots: Sequence[int], family: int,
               max_binds: int) -> bytes:
    """A generation's bind block: entries then zero entries (proto 0 ends the list)."""
    layout = BIND4 if family == 4 else BIND6
    out = bytearray()
    for bind, t, spec in binds:
        net = bind.network
        flags = BIND_FRAG_OK if frag_ok(bind, t, binds) else 0
        out += layout.pack(net.network_address.packed, net.netmask.packed, _PROTO[bind.proto], flags,
                           slots[t], bind.port_start, bind.port_end - bind.port_start,
                           *sip_prefix(bytes(spec.hash_key)))
    out += bytes(layout.size * (max_binds - len(binds)))
    return bytes(out)


def row_key_base(gen: int, slot: int, max_tables: int) -> int:
    return (gen * max_tables + slot) << 16


# --- counters and bookkeeping --------------------------------------------------------------

def stat_key(slot: int, reason: str) -> int:
    return slot * len(REASONS) + REASONS.index(reason)


def sum_percpu(raw: bytes, ncpu: int) -> tuple[int, int]:
    """Sum one per-CPU glb_stat value (ncpu slots of 16 bytes) into (packets, bytes)."""
    packets = nbytes = 0
    for cpu in range(ncpu):
        p, b = STAT.unpack_from(raw, cpu * STAT.size)
        packets += p
        nbytes += b
    return packets, nbytes
