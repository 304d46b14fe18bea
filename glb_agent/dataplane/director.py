"""Loader of the XDP director: compile, attach, feed tables, adopt after a restart, detach.

Design (details in bpf/director.c and bpf/include/director_defs.h):

* Compile-time specialisation. bcc compiles ``bpf/director.c`` with every constant of the
  fast path as a ``-D`` flag (outer MACs and source address, the constant part of the
  outer IPv4 checksum, the hash fields, the MTU, the features), so the per-packet path
  does no configuration lookup.
* Atomic table swaps by double buffering. Binds and rows exist twice ("generations").
  ``update_tables`` waits for an RCU grace period (no packet still reads the idle
  generation), writes the idle generation completely, then flips ``glb_ctl.gen`` with one
  4-byte map update. A packet reads the generation once, so it uses all old or all new
  state: binds, keys and rows change together, across every table at once.
* Attach and adopt through ``bpfcore.pinned.PinnedXdp`` (the model the proxy shares):
  pinned XDP link, pinned maps and ``meta`` under ``/sys/fs/bpf/glb/director/<ifname>``.
  ``meta`` holds the build signatures, service -> slot names and row digests. A restarted
  agent whose build signature and map layout match the pinned ones adopts the running
  program: it only opens the pins -- no compile, no detach, no re-attach. If only the
  program changed, the new one reuses the pinned maps and replaces the old one through
  ``BPF_LINK_UPDATE`` (atomic, no gap). If the map layout changed, the new program gets
  fresh maps and replaces the old one right after the first table load, so traffic keeps
  flowing. A director pinned by an older release at /sys/fs/bpf/glb/<ifname> is moved
  here first (one bpffs rename; its link keeps forwarding).
* ``stop`` detaches the link and removes the pin directory.

``DirectorDataPlane`` is what the agent needs from any director data plane; ``XdpDirector``
is this one, and the DPDK director (issue 16) is meant to be the second.
"""

from __future__ import annotations

import fcntl
import functools
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from glb_agent.dataplane.bpfcore import binding
from glb_agent.dataplane.bpfcore.pinned import PinnedXdp, check_pin_dir, ensure_bpffs, read_meta_map
from glb_agent.dataplane.bpfcore.xdp import XdpMode, interface_index
from glb_agent.dataplane.director_maps import (
    BIND4,
    BIND6,
    CTL,
    DIRECTOR_C,
    REASONS,
    ROW_DTYPE,
    STAT,
    UNMATCHED,
    BuildOptions,
    CompiledTables,
    compile_tables,
    pack_binds,
    row_key_base,
    stat_key,
    sum_percpu,
)
from glb_agent.errors import GlbError, InputError
from glb_agent.table.spec import TABLE_ROWS, TableSpec
from glb_agent.util import paths

# Maps of director.c, each pinned as <pin_dir>/<name> (bcc pins them while loading, at the
# GLB_PIN_DIR compiled into the program). Releases before the shared ``meta`` kept the
# bookkeeping in a glb_meta map of director.c: legacy adoption reads that pin, and loading
# a program here unpins it.
MAP_NAMES = ("glb_ctl", "glb_binds4", "glb_binds6", "glb_rows", "glb_stats")
LEGACY_META = "glb_meta"
PROG_FUNC = "xdp_glb_director"

Tables = Sequence[tuple[TableSpec, "np.ndarray | None"]]

_SIOCGIFHWADDR = 0x8927
_SIOCGIFMTU = 0x8921


def default_pin_dir(interface: str) -> Path:
    return paths.pin_dir("director", interface)


def _legacy_meta(pin_dir: Path) -> dict:
    """An older release kept the director's bookkeeping in its glb_meta map (same codec)."""
    return read_meta_map(pin_dir / LEGACY_META)


@runtime_checkable
class DirectorDataPlane(Protocol):
    """What the director agent needs from a director data plane (XDP, or DPDK in dpdk.py).

    ``start`` attaches or adopts and says which; ``update_tables`` makes exactly the given
    tables live at once and returns the generation; ``counters`` are per service (and
    ``_unmatched``) ``<reason>_packets``/``<reason>_bytes``; ``ready`` is the BGP feed's
    question (forwarding with tables loaded?) with its reason; ``close`` lets go without
    stopping the forwarding, ``stop`` stops it.
    """

    settings: DirectorSettings
    dataplane: str  # its directors[].dataplane value: "xdp" or "dpdk"

    def start(self) -> str: ...

    def update_tables(self, tables: Tables) -> int: ...

    def counters(self) -> dict[str, dict[str, int]]: ...

    def ready(self) -> tuple[bool, str]: ...

    def close(self) -> None: ...

    def stop(self) -> bool: ...


@dataclass(frozen=True)
class DirectorSettings:
    """How one director interface forwards; everything except tables.

    ``mtu`` defaults to the interface's MTU (packets that would exceed it once
    encapsulated are dropped and counted rather than sent to die silently on the wire).
    ``max_tables``/``max_binds`` size the maps (each table slot costs 2 x 65,536 rows of
    4 x ``row_width`` bytes: 2 MiB with the default four entries).
    """

    interface: str
    source_ip: ipaddress.IPv4Address
    gateway_mac: str
    hash_fields: tuple[str, ...] = ("src_addr",)
    # fleet.alt_hash_fields: while migrating hash fields, the old ones (empty: no migration)
    alt_hash_fields: tuple[str, ...] = ()
    pin_dir: Path = None  # type: ignore[assignment]  # default_pin_dir(interface)
    mtu: int | None = None
    max_tables: int = 16
    max_binds: int = 64
    ipv6: bool = True
    vlan: bool = True
    icmp: bool = True
    xdp_mode: XdpMode = "auto"
    row_width: int = 4  # entries per forwarding row (send order); 2 = upstream's two columns
    meta: dict = field(default_factory=dict, compare=False)  # free-form, stored in bookkeeping

    def __post_init__(self) -> None:
        if self.pin_dir is None:
            object.__setattr__(self, "pin_dir", default_pin_dir(self.interface))
        object.__setattr__(self, "pin_dir", Path(self.pin_dir))
        object.__setattr__(self, "hash_fields", tuple(self.hash_fields))
        object.__setattr__(self, "alt_hash_fields", tuple(self.alt_hash_fields))
        if isinstance(self.source_ip, str):
            try:
                object.__setattr__(self, "source_ip", ipaddress.ip_address(self.source_ip))
            except ValueError as exc:
                raise InputError(f"source_ip: {exc}") from None
        object.__setattr__(self, "gateway_mac", str(self.gateway_mac).lower().replace("-", ":"))

    def validate(self) -> None:
        if not self.interface or len(self.interface) > 15 or "/" in self.interface:
            raise InputError(f"interface {self.interface!r} is not a valid interface name")
        if self.xdp_mode not in ("auto", "native", "generic"):
            raise InputError(f"xdp_mode {self.xdp_mode!r}: use auto, native or generic")
        check_pin_dir(self.pin_dir)
        self.build_options("02:00:00:00:00:00", self.mtu or 1500).validate()

    def build_options(self, src_mac: str, mtu: int) -> BuildOptions:
        return BuildOptions(source_ip=self.source_ip, src_mac=src_mac, gateway_mac=self.gateway_mac,
                            hash_fields=self.hash_fields, alt_hash_fields=self.alt_hash_fields,
                            mtu=mtu, max_tables=self.max_tables,
                            max_binds=self.max_binds, ipv6=self.ipv6, vlan=self.vlan, icmp=self.icmp,
                            row_width=self.row_width)


# --- interfaces (through sockets, so they resolve in the caller's network namespace) -------

def _ifreq(interface: str, request: int) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16s16s", interface.encode(), b"")
        return fcntl.ioctl(s.fileno(), request, req)


def interface_mac(interface: str) -> str:
    raw = _ifreq(interface, _SIOCGIFHWADDR)[18:24]
    return ":".join(f"{b:02x}" for b in raw)


def interface_mtu(interface: str) -> int:
    return struct.unpack_from("i", _ifreq(interface, _SIOCGIFMTU), 16)[0]


# --- compiled program ----------------------------------------------------------------------

class DirectorProgram:
    """The program compiled by bcc for one option set; maps pinned under ``pin_dir`` if given.

    Keep the object alive while the program must stay loaded without a link (tests).
    """

    def __init__(self, opts: BuildOptions, pin_dir: Path | None = None) -> None:
        from bcc import BPF  # system package; imported lazily so tooling works without it

        opts.validate()
        self.opts = opts
        try:
            # bcc wants bytes for names (str works but warns).
            self.bpf = BPF(src_file=os.fsencode(DIRECTOR_C), cflags=opts.cflags(pin_dir))
            self.prog_fd = self.bpf.load_func(PROG_FUNC.encode(), BPF.XDP).fd
        except Exception as exc:
            raise GlbError(f"compiling/loading {DIRECTOR_C.name} failed: {exc}") from exc
        self.map_fds = {name: self.bpf[name.encode()].map_fd for name in MAP_NAMES}

    @property
    def prog_id(self) -> int:
        return binding.prog_info(self.prog_fd).id


class DirectorState:
    """Reads and writes the director's maps, given their fds (pinned or not), and the
    bookkeeping (``read_meta``/``write_meta``: the pinned ``meta``, or a dict in memory
    for a program loaded without pins, as the packet tests and benches do)."""

    def __init__(self, map_fds: dict[str, int], max_tables: int, max_binds: int,
                 pinned: PinnedXdp | None = None) -> None:
        self.fds = map_fds
        self.max_tables = max_tables
        self.max_binds = max_binds
        self._pinned = pinned
        self._meta: dict = {}

    # control and bookkeeping
    def ctl(self) -> tuple[int, int]:
        raw = binding.map_lookup(self.fds["glb_ctl"], b"\0" * 4, CTL.size)
        return CTL.unpack(raw) if raw is not None else (0, 0)

    def read_meta(self) -> dict:
        return self._pinned.read_meta(self._pinned.pin_dir) if self._pinned is not None else dict(self._meta)

    def write_meta(self, meta: dict) -> None:
        if self._pinned is not None:
            self._pinned.write_meta(meta)
        else:
            self._meta = dict(meta)

    # tables
    def apply(self, compiled: CompiledTables) -> int:
        """Write ``compiled`` as the idle generation and make it live; returns it."""
        meta = self.read_meta()
        live, _loaded = self.ctl()
        gen = 1 - (live & 1)
        old_slots: dict[str, int] = meta.get("slots", {})
        slots = _assign_slots(compiled.names, old_slots, self.max_tables)
        digests = meta.get("rows", [{}, {}])
        # No packet may still be reading the idle generation from before the last flip.
        binding.wait_for_readers()
        digests[gen] = {}
        self.write_meta(meta | {"rows": digests})
        for t, name in enumerate(compiled.names):
            slot = slots[name]
            if digests[gen].get(str(slot)) == compiled.digests[t]:
                continue
            self._write_rows(gen, slot, compiled.rows[t])
        new_rows = {str(slots[n]): compiled.digests[t] for t, n in enumerate(compiled.names)}
        slot_list = [slots[n] for n in compiled.names]
        base = gen * self.max_binds
        for family, binds in ((4, compiled.binds4), (6, compiled.binds6)):
            block = pack_binds(binds, slot_list, family, self.max_binds)
            assert len(block) == (BIND4 if family == 4 else BIND6).size * self.max_binds
            keys = np.arange(base, base + self.max_binds, dtype=np.uint32).tobytes()
            binding.map_update_batch(self.fds[f"glb_binds{family}"], keys, block, self.max_binds)
        for name, slot in slots.items():
            if old_slots.get(name) != slot:
                self._zero_stats(slot)
        digests[gen] = new_rows
        self.write_meta(meta | {"rows": digests, "slots": slots})
        binding.map_update(self.fds["glb_ctl"], b"\0" * 4, CTL.pack(gen, 1))
        return gen

    def _write_rows(self, gen: int, slot: int, rows: np.ndarray) -> None:
        base = row_key_base(gen, slot, self.max_tables)
        keys = np.arange(base, base + TABLE_ROWS, dtype=np.uint32).tobytes()
        binding.map_update_batch(self.fds["glb_rows"], keys, rows.astype(ROW_DTYPE).tobytes(), TABLE_ROWS)

    def _zero_stats(self, slot: int) -> None:
        n = len(REASONS)
        keys = np.arange(slot * n, slot * n + n, dtype=np.uint32).tobytes()
        zero = bytes(STAT.size * binding.possible_cpus() * n)
        binding.map_update_batch(self.fds["glb_stats"], keys, zero, n)

    def counters(self) -> dict[str, dict[str, int]]:
        """Per service (and ``_unmatched``): ``<reason>_packets`` / ``<reason>_bytes``, CPU-summed."""
        ncpu = binding.possible_cpus()
        size = STAT.size * ncpu
        slots = dict(self.read_meta().get("slots", {}))
        slots[UNMATCHED] = self.max_tables
        out: dict[str, dict[str, int]] = {}
        for name, slot in sorted(slots.items()):
            cells: dict[str, int] = {}
            for reason in REASONS:
                key = struct.pack("<I", stat_key(slot, reason))
                raw = binding.map_lookup(self.fds["glb_stats"], key, size) or bytes(size)
                packets, nbytes = sum_percpu(raw, ncpu)
                cells[f"{reason}_packets"] = packets
                cells[f"{reason}_bytes"] = nbytes
            out[name] = cells
        return out

    def bind_count(self) -> int:
        gen, _ = self.ctl()
        count = 0
        for family, layout in ((4, BIND4), (6, BIND6)):
            raw = binding.map_lookup(self.fds[f"glb_binds{family}"], struct.pack("<I", gen * self.max_binds),
                                     layout.size)
            count += raw is not None and layout.unpack(raw)[2] != 0
        return count


def _assign_slots(names: Sequence[str], old: dict[str, int], max_tables: int) -> dict[str, int]:
    """Stable slots: a service keeps its slot (rows, counters) across updates; a new one gets
    a slot the live generation does not use, so its counters can be zeroed safely."""
    slots = {n: old[n] for n in names if n in old}
    busy = set(old.values()) | set(slots.values())
    free = [s for s in range(max_tables) if s not in busy]
    spare = [s for s in range(max_tables) if s not in slots.values() and s not in free]
    for name in names:
        if name not in slots:
            slots[name] = (free or spare).pop(0)
    return slots


# --- the director ---------------------------------------------------------------------------

_T = TypeVar("_T")


def _locked(method: Callable[..., _T]) -> Callable[..., _T]:
    @functools.wraps(method)
    def wrapper(self: XdpDirector, *args: object, **kwargs: object) -> _T:
        with self.pinned.lock():
            return method(self, *args, **kwargs)

    return wrapper


class XdpDirector:
    """One interface's XDP director: ``start`` (or adopt), ``update_tables``, ``counters``,
    ``stop``; a ``DirectorDataPlane``."""

    dataplane = "xdp"  # directors[].dataplane

    def __init__(self, settings: DirectorSettings) -> None:
        self.settings = settings
        self.pinned = PinnedXdp("director", settings.interface, settings.pin_dir, legacy_meta=_legacy_meta)
        self.state: DirectorState | None = None
        self.outcome: str | None = None
        self._program: DirectorProgram | None = None
        self._pending_swap = False  # new program waits for the first table load (fresh maps)
        self._fds: list[int] = []

    @property
    def pin_dir(self) -> Path:
        return self.settings.pin_dir

    @property
    def link_fd(self) -> int | None:
        return self.pinned.link_fd

    def _options(self) -> tuple[BuildOptions, int]:
        s = self.settings
        s.validate()
        try:
            ifindex = interface_index(s.interface)
        except GlbError as exc:
            raise InputError(str(exc)) from None
        opts = s.build_options(interface_mac(s.interface), s.mtu or interface_mtu(s.interface))
        opts.validate()
        return opts, ifindex

    @_locked
    def start(self) -> str:
        """Attach (or adopt) the program; returns what happened:

        ``adopted`` (the running program matched: nothing touched), ``replaced`` (program
        swapped in place through the link), ``replace-pending`` (fresh maps: the swap
        happens at the first ``update_tables``), ``attached-native`` / ``attached-generic``.
        """
        opts, ifindex = self._options()
        pin, pinned = self.pin_dir, self.pinned
        prog_sig, maps_sig = opts.program_signature(pin), opts.maps_signature()
        ensure_bpffs()
        pinned.migrate()
        pin.mkdir(parents=True, exist_ok=True)

        link = pinned.open_link()
        link_alive = link is not None and link.ifindex == ifindex
        meta = pinned.read_meta(pin)
        maps_ok = meta.get("maps_sig") == maps_sig
        wanted = self.settings.xdp_mode
        if link_alive and wanted != "auto" and meta.get("mode") not in (None, wanted):
            # A link cannot change attach mode: detach (a short gap) and attach anew below.
            pinned.detach()
            link_alive = False

        same_prog = link is not None and meta.get("prog_id") == link.prog_id
        if link_alive and maps_ok and same_prog and meta.get("prog_sig") == prog_sig:
            self._open_pinned(opts)
            self.outcome = "adopted"
            return self.outcome

        if not maps_ok:
            # Another layout: the running program (if any) keeps its maps through its own
            # references; the new program gets fresh ones at the same paths.
            pinned.unpin(MAP_NAMES)
            meta = {k: meta[k] for k in ("mode",) if k in meta}
        pinned.unpin((LEGACY_META,))  # an older program's; its content is in meta by now
        program = DirectorProgram(opts, pin)
        self._program = program
        self._open_pinned(opts)
        assert self.state is not None
        _gen, loaded = self.state.ctl()
        new_meta = meta | {"prog_sig": prog_sig, "maps_sig": maps_sig, "interface": self.settings.interface,
                           "ifindex": ifindex, "source_ip": str(opts.source_ip),
                           "gateway_mac": opts.gateway_mac, "hash_fields": list(opts.hash_fields),
                           "max_tables": opts.max_tables, "max_binds": opts.max_binds,
                           "settings": self.settings.meta}
        new_meta.pop("migrated_from", None)
        if link_alive:
            if maps_ok or loaded:
                pinned.swap(program.prog_fd)
                self.outcome = "replaced"
            else:
                self._pending_swap = True
                self.outcome = "replace-pending"
            new_meta["prog_id"] = program.prog_id
            new_meta.setdefault("mode", "unknown")
        else:
            pinned.drop_link()  # stale (its device went away) or detached for a mode change
            mode = pinned.attach(program.prog_fd, wanted)
            new_meta |= {"prog_id": program.prog_id, "mode": mode}
            self.outcome = f"attached-{mode}"
        self.state.write_meta(new_meta)
        return self.outcome

    def open_existing(self) -> dict:
        """Open a running director's pinned maps (for status/counters) without starting
        anything; returns its bookkeeping. GlbError if nothing is pinned there."""
        where = self.pinned.location()
        meta = self.pinned.read_meta(where)
        if not meta.get("max_tables"):
            raise GlbError(f"no director state pinned at {self.pin_dir}")
        opts = self.settings.build_options("02:00:00:00:00:00", 1500)
        self._open_pinned(replace(opts, max_tables=int(meta["max_tables"]), max_binds=int(meta["max_binds"])),
                          where)
        return meta

    def _open_pinned(self, opts: BuildOptions, where: Path | None = None) -> None:
        fds = {}
        for name in MAP_NAMES:
            m = self.pinned.open_map(name, where=where)
            fds[name] = m.fd
            self._fds.append(m.fd)
        self.state = DirectorState(fds, opts.max_tables, opts.max_binds,
                                   self.pinned if where in (None, self.pin_dir) else None)
        if where not in (None, self.pin_dir):
            self.state.write_meta(self.pinned.read_meta(where))

    def _require_state(self) -> DirectorState:
        if self.state is None:
            raise GlbError("director not started: call start() first")
        return self.state

    @_locked
    def update_tables(self, tables: Tables) -> int:
        """Make exactly ``tables`` live, atomically; returns the new generation.

        ``tables`` is the complete set: services not listed stop being forwarded. Each
        entry is (spec, rows) with rows an integer array (65536, 2) of backend indices
        (primary, secondary), as the table builder produces; rows may be None for a table
        without backends (its traffic is then dropped and counted). Everything is
        validated before any map is touched (InputError).
        """
        state = self._require_state()
        opts = self._options()[0] if self._program is None else self._program.opts
        compiled = compile_tables(tables, opts)
        gen = state.apply(compiled)
        if self._pending_swap and self._program is not None and self.link_fd is not None:
            self.pinned.swap(self._program.prog_fd)
            self._pending_swap = False
            self.outcome = "replaced"
        return gen

    def counters(self) -> dict[str, dict[str, int]]:
        return self._require_state().counters()

    def ready(self) -> tuple[bool, str]:
        """The BGP feed's check (``director_ready``) for this director's interface and pins."""
        return director_ready(self.settings.interface, self.pin_dir)

    @_locked
    def stop(self) -> bool:
        """Detach and remove every pin; works on a director started by another process.
        True if there was anything to stop."""
        self.close()
        return self.pinned.remove()

    def close(self) -> None:
        """Forget the fds without touching the running program (as an agent exit does)."""
        self.pinned.close()
        for fd in self._fds:
            binding.close(fd)
        self._fds.clear()
        self.state = None
        self._program = None

    def __enter__(self) -> XdpDirector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def director_ready(interface: str, pin_dir: Path | None = None) -> tuple[bool, str]:
    """Whether ``interface`` forwards VIP traffic: our program attached there AND tables loaded.

    For the BGP speaker: announce the VIPs only while this holds, so a router never sends
    traffic to a director that would pass it to its own kernel. Read-only (it finds a
    director an older release pinned at the legacy path, too). Never raises.
    """
    try:
        pinned = PinnedXdp("director", interface, Path(pin_dir) if pin_dir is not None else None,
                           legacy_meta=_legacy_meta)
        where = pinned.location()
    except GlbError as exc:
        return False, str(exc)
    fds: list[int] = []
    try:
        try:
            att, ours = pinned.running(where)
        except GlbError as exc:
            return False, str(exc)
        if att is None:
            return False, f"no XDP program attached to {interface}"
        if ours is None:
            if not (where / "link").exists():
                return False, f"no director link pinned at {where / 'link'}"
            return False, f"the director pinned at {where} is not the XDP program of {interface} " \
                          f"(that is {att.name} id {att.prog_id})"
        map_fds = {}
        for name in ("glb_ctl", "glb_binds4", "glb_binds6"):
            fd = binding.try_obj_get(where / name)
            if fd is None:
                return False, f"pinned map {where / name} is missing"
            fds.append(fd)
            map_fds[name] = fd
        meta = pinned.read_meta(where)
        state = DirectorState(map_fds, int(meta.get("max_tables", 0)), int(meta.get("max_binds", 0)))
        gen, loaded = state.ctl()
        if not loaded:
            return False, f"program {ours} attached to {interface}, but no tables loaded yet"
        if not meta.get("max_binds") or state.bind_count() == 0:
            return False, f"program {ours} attached to {interface}, but no binds are live"
        services = len(meta.get("slots", {}))
        return True, (f"program {ours} attached to {interface} ({att.mode}), "
                      f"generation {gen}, {services} service(s)")
    except OSError as exc:
        return False, f"cannot inspect {where}: {exc}"
    finally:
        for fd in fds:
            binding.close(fd)
