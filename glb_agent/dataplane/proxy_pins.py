"""Pinned BPF objects and raw map access for the proxy data plane, through libbpf via ctypes.

Why not bcc's table objects: a restarted agent (or ``glb-agent proxy status``) must work on
the program that is already attached, without recompiling it. Those maps exist only as pins
in bpffs, so we open them by path and read/write them with the plain bpf() map commands,
and use the same code for freshly loaded maps so there is a single, tested path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

BPF_ANY = 0

_INFO_BUF = 256  # larger than struct bpf_prog_info / bpf_map_info on any kernel we run on


@cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    lib = ctypes.CDLL(name, use_errno=True)
    vp, cp, i, u32p = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)
    for fn, args in (
        ("bpf_obj_get", [cp]),
        ("bpf_obj_pin", [i, cp]),
        ("bpf_map_update_elem", [i, vp, vp, ctypes.c_uint64]),
        ("bpf_map_lookup_elem", [i, vp, vp]),
        ("bpf_map_delete_elem", [i, vp]),
        ("bpf_map_get_next_key", [i, vp, vp]),
        ("bpf_obj_get_info_by_fd", [i, vp, u32p]),
        ("bpf_prog_get_fd_by_id", [ctypes.c_uint32]),
        ("libbpf_num_possible_cpus", []),
        ("bpf_xdp_attach", [i, i, ctypes.c_uint32, vp]),
        ("bpf_xdp_detach", [i, ctypes.c_uint32, vp]),
    ):
        f = getattr(lib, fn)
        f.argtypes = args
        f.restype = ctypes.c_int
    return lib


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno() or -rc
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def possible_cpus() -> int:
    """Number of possible CPUs: the stride of per-CPU map values."""
    return _check(_lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")


def obj_get(path: Path) -> int:
    """Open a pinned program or map; returns a new fd (the caller closes it)."""
    return _check(_lib().bpf_obj_get(str(path).encode()), f"open pin {path}")


def obj_pin(fd: int, path: Path) -> None:
    _check(_lib().bpf_obj_pin(fd, str(path).encode()), f"pin {path}")


XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2


def xdp_attach(ifindex: int, prog_fd: int, flags: int) -> None:
    """Attach (or atomically replace, in the same mode) the XDP program of ``ifindex``."""
    _check(_lib().bpf_xdp_attach(ifindex, prog_fd, flags, None), f"attach XDP to ifindex {ifindex}")


def xdp_detach(ifindex: int, flags: int) -> None:
    _check(_lib().bpf_xdp_detach(ifindex, flags, None), f"detach XDP from ifindex {ifindex}")


def prog_fd_by_id(prog_id: int) -> int:
    return _check(_lib().bpf_prog_get_fd_by_id(prog_id), f"open program id {prog_id}")


def _info(fd: int) -> bytes:
    buf = ctypes.create_string_buffer(_INFO_BUF)
    size = ctypes.c_uint32(_INFO_BUF)
    _check(_lib().bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(size)), "bpf_obj_get_info_by_fd")
    return buf.raw[: size.value]


@dataclass(frozen=True)
class ProgInfo:
    """What the kernel says about a loaded program (struct bpf_prog_info, first fields)."""

    prog_id: int
    name: str


def prog_info(fd: int) -> ProgInfo:
    raw = _info(fd)
    # struct bpf_prog_info: type u32, id u32, tag[8], 2 x u32, 3 x u64, 2 x u32, u64, name[16]
    name = raw[64:80].split(b"\0", 1)[0].decode(errors="replace")
    return ProgInfo(prog_id=int.from_bytes(raw[4:8], "little"), name=name)


@dataclass(frozen=True)
class MapInfo:
    """Shape of a map (struct bpf_map_info, first fields)."""

    map_id: int
    key_size: int
    value_size: int
    max_entries: int


def map_info(fd: int) -> MapInfo:
    raw = _info(fd)
    words = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, 20, 4)]
    return MapInfo(map_id=words[1], key_size=words[2], value_size=words[3], max_entries=words[4])


class Map:
    """A BPF map opened by fd; owns the fd. Keys and values are raw bytes."""

    def __init__(self, fd: int, *, percpu: bool = False) -> None:
        self.fd = fd
        info = map_info(fd)
        self.key_size = info.key_size
        self.max_entries = info.max_entries
        # Per-CPU values are exchanged as one 8-byte-aligned slot per possible CPU.
        self.slot = (info.value_size + 7) // 8 * 8 if percpu else info.value_size
        self.value_size = self.slot * possible_cpus() if percpu else info.value_size

    @classmethod
    def open(cls, path: Path, *, percpu: bool = False) -> Map:
        return cls(obj_get(path), percpu=percpu)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, key: bytes) -> ctypes.Array:
        if len(key) != self.key_size:
            raise ValueError(f"key of {len(key)} bytes for a map with {self.key_size}-byte keys")
        return ctypes.create_string_buffer(key, len(key))

    def update(self, key: bytes, value: bytes) -> None:
        if len(value) != self.value_size:
            raise ValueError(f"value of {len(value)} bytes, map wants {self.value_size}")
        k, v = self._key(key), ctypes.create_string_buffer(value, len(value))
        _check(_lib().bpf_map_update_elem(self.fd, k, v, BPF_ANY), "map update")

    def lookup(self, key: bytes) -> bytes | None:
        k, v = self._key(key), ctypes.create_string_buffer(self.value_size)
        rc = _lib().bpf_map_lookup_elem(self.fd, k, v)
        if rc < 0:
            if ctypes.get_errno() == errno.ENOENT:
                return None
            _check(rc, "map lookup")
        return v.raw

    def delete(self, key: bytes) -> None:
        rc = _lib().bpf_map_delete_elem(self.fd, self._key(key))
        if rc < 0 and ctypes.get_errno() != errno.ENOENT:
            _check(rc, "map delete")

    def keys(self) -> Iterator[bytes]:
        """All keys; collected first so callers may delete while iterating."""
        found: list[bytes] = []
        cur = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while True:
            rc = _lib().bpf_map_get_next_key(self.fd, cur, nxt)
            if rc < 0:
                if ctypes.get_errno() == errno.ENOENT:
                    break
                _check(rc, "map get_next_key")
            found.append(nxt.raw)
            cur = ctypes.create_string_buffer(nxt.raw, self.key_size)
            if len(found) > self.max_entries:  # a map changing under us; never loop forever
                break
        return iter(found)

    def percpu_values(self, key: bytes) -> list[bytes]:
        """One value per possible CPU (only for per-CPU maps)."""
        raw = self.lookup(key)
        if raw is None:
            return []
        return [raw[i : i + self.slot] for i in range(0, len(raw), self.slot)]
