"""The few bpf(2) commands the director's loader needs, called directly through ctypes.

bcc compiles and loads the program, but it neither pins programs nor creates XDP links,
and it cannot open maps of a program some earlier process loaded. Adopting a running
director needs all of that, so every map and link operation goes through these thin
wrappers on pinned file descriptors; one code path serves both a fresh start and an
adoption. The attribute layouts are the kernel's stable ``union bpf_attr`` members.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_NR_BPF = 321  # x86_64
_NR_MEMBARRIER = 324

BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_UPDATE_BATCH = 26
BPF_LINK_CREATE = 28
BPF_LINK_UPDATE = 29
BPF_LINK_DETACH = 34

BPF_XDP = 37  # enum bpf_attach_type
BPF_LINK_TYPE_XDP = 6

XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2

MEMBARRIER_CMD_GLOBAL = 1


@cache
def _libc() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    lib.syscall.restype = ctypes.c_long
    return lib


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    rc = _libc().syscall(_NR_BPF, ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(cmd {cmd}): {os.strerror(err)}")
    return rc


def _attr(fmt: str, *values: object, size: int = 128) -> ctypes.Array:
    raw = struct.pack(fmt, *values)
    return ctypes.create_string_buffer(raw.ljust(size, b"\0"), size)


def _addr(buf: ctypes.Array | None) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


# --- objects in bpffs -------------------------------------------------------------------

def obj_pin(fd: int, path: str | Path) -> None:
    cpath = ctypes.create_string_buffer(os.fsencode(str(path)))
    _bpf(BPF_OBJ_PIN, _attr("=QI", _addr(cpath), fd))


def obj_get(path: str | Path) -> int:
    """A new fd for the object pinned at ``path`` (FileNotFoundError if there is none)."""
    cpath = ctypes.create_string_buffer(os.fsencode(str(path)))
    return _bpf(BPF_OBJ_GET, _attr("=QII", _addr(cpath), 0, 0))


def try_obj_get(path: str | Path) -> int | None:
    try:
        return obj_get(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def prog_fd_by_id(prog_id: int) -> int:
    return _bpf(BPF_PROG_GET_FD_BY_ID, _attr("=I", prog_id))


def _info(fd: int, size: int) -> bytes:
    buf = ctypes.create_string_buffer(size)
    _bpf(BPF_OBJ_GET_INFO_BY_FD, _attr("=IIQ", fd, size, ctypes.addressof(buf)))
    return buf.raw


@dataclass(frozen=True)
class ProgInfo:
    id: int
    tag: bytes
    name: str


def prog_info(fd: int) -> ProgInfo:
    # struct bpf_prog_info: type u32, id u32, tag[8], ... name[16] at offset 64.
    raw = _info(fd, 256)
    _type, prog_id = struct.unpack_from("=II", raw, 0)
    return ProgInfo(prog_id, raw[8:16], raw[64:80].split(b"\0", 1)[0].decode(errors="replace"))


@dataclass(frozen=True)
class LinkInfo:
    type: int
    id: int
    prog_id: int
    ifindex: int  # 0 once the device is gone or the link was detached


def link_info(fd: int) -> LinkInfo:
    # struct bpf_link_info: type, id, prog_id, then a union (8-aligned) whose xdp member
    # starts with the ifindex.
    raw = _info(fd, 64)
    ltype, lid, prog_id = struct.unpack_from("=III", raw, 0)
    (ifindex,) = struct.unpack_from("=I", raw, 16)
    return LinkInfo(ltype, lid, prog_id, ifindex if ltype == BPF_LINK_TYPE_XDP else 0)


# --- XDP links ------------------------------------------------------------------------------

def xdp_link_create(prog_fd: int, ifindex: int, flags: int) -> int:
    """Attach ``prog_fd`` to ``ifindex`` as an XDP link; the link owns the attachment."""
    return _bpf(BPF_LINK_CREATE, _attr("=IIII", prog_fd, ifindex, BPF_XDP, flags))


def link_update(link_fd: int, new_prog_fd: int) -> None:
    """Swap the link's program in one step: packets see the old or the new one, never none."""
    _bpf(BPF_LINK_UPDATE, _attr("=IIII", link_fd, new_prog_fd, 0, 0))


def link_detach(link_fd: int) -> None:
    _bpf(BPF_LINK_DETACH, _attr("=I", link_fd))


# --- maps -----------------------------------------------------------------------------------

def map_lookup(fd: int, key: bytes, value_size: int) -> bytes:
    kbuf = ctypes.create_string_buffer(key, len(key))
    vbuf = ctypes.create_string_buffer(value_size)
    _bpf(BPF_MAP_LOOKUP_ELEM, _attr("=IIQQQ", fd, 0, _addr(kbuf), _addr(vbuf), 0))
    return vbuf.raw


def map_update(fd: int, key: bytes, value: bytes) -> None:
    kbuf = ctypes.create_string_buffer(key, len(key))
    vbuf = ctypes.create_string_buffer(value, len(value))
    _bpf(BPF_MAP_UPDATE_ELEM, _attr("=IIQQQ", fd, 0, _addr(kbuf), _addr(vbuf), 0))


def map_update_batch(fd: int, keys: bytes, values: bytes, count: int) -> None:
    """One syscall for ``count`` packed keys/values; array maps take it whole."""
    kbuf = ctypes.create_string_buffer(keys, len(keys))
    vbuf = ctypes.create_string_buffer(values, len(values))
    done = 0
    while done < count:
        # The kernel may stop early (it reports how many it did in ``count``).
        key_size, val_size = len(keys) // count, len(values) // count
        attr = _attr("=QQQQIIQQ", 0, 0, _addr(kbuf) + done * key_size, _addr(vbuf) + done * val_size,
                     count - done, fd, 0, 0)
        _bpf(BPF_MAP_UPDATE_BATCH, attr)
        (did,) = struct.unpack_from("=I", attr.raw, 32)
        if did == 0:
            raise OSError(errno.EIO, "BPF_MAP_UPDATE_BATCH made no progress")
        done += did


@cache
def possible_cpus() -> int:
    """Per-CPU map values have one slot per possible CPU (not online CPU)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    total = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total


# --- RCU grace period -----------------------------------------------------------------------

def wait_for_readers() -> None:
    """Return only after every BPF program run that started before this call has finished.

    XDP programs run inside RCU read-side sections, and MEMBARRIER_CMD_GLOBAL is
    implemented as synchronize_rcu(), so this is the kernel's own guarantee that no packet
    still holds a pointer into the generation we are about to overwrite. On hosts where
    the command is unavailable (nohz_full), sleep far longer than any program run.
    """
    rc = _libc().syscall(_NR_MEMBARRIER, ctypes.c_int(MEMBARRIER_CMD_GLOBAL), ctypes.c_uint(0),
                         ctypes.c_int(0))
    if rc != 0:
        import time

        time.sleep(0.05)


def close(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
