"""The one binding to the kernel's BPF interface: libbpf (``libbpf.so.1``) through ctypes.

Why libbpf and not the raw ``bpf()`` syscall: every operation the data planes need is a
stable, exported libbpf function with size-versioned option structs (``sz`` first), so we
never hand-pack ``union bpf_attr`` layouts whose offsets differ by command; and two of
them are not syscalls at all -- "which XDP program runs on this interface" and the legacy
netlink attach that older releases used are rtnetlink requests, which libbpf already
speaks (``bpf_xdp_query``, ``bpf_xdp_attach``). bcc, which compiles our programs, links
the same library, so it costs no extra dependency. The one non-BPF call here,
``wait_for_readers``, is ``membarrier(2)`` through libc.

Every function raises ``OSError`` (errno set, message naming the operation and object) on
failure; functions named ``try_*`` return None for "not there" instead. File descriptors
returned are owned by the caller (``close`` them, or wrap them in ``maps.Map``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# enum bpf_attach_type / bpf_link_type / bpf_map_type members we use (uapi linux/bpf.h).
BPF_XDP = 37
BPF_LINK_TYPE_XDP = 6
BPF_MAP_TYPE_ARRAY = 2
BPF_ANY = 0
BPF_OBJ_NAME_LEN = 16

# XDP attach flags (uapi linux/if_link.h).
XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
XDP_FLAGS_HW_MODE = 1 << 3
XDP_FLAGS_REPLACE = 1 << 4
# enum { XDP_ATTACHED_NONE, _DRV, _SKB, _HW, _MULTI } as IFLA_XDP_ATTACHED reports it.
XDP_ATTACHED_MODES = {1: "native", 2: "generic", 3: "offload", 4: "multi"}
MODE_FLAGS = {"native": XDP_FLAGS_DRV_MODE, "generic": XDP_FLAGS_SKB_MODE, "offload": XDP_FLAGS_HW_MODE}

_NR_MEMBARRIER = 324  # x86_64
_MEMBARRIER_CMD_GLOBAL = 1
_INFO_BUF = 256  # larger than bpf_prog_info / bpf_map_info / bpf_link_info on our kernels


# --- libbpf option structs (each begins with its own size; libbpf zero-fills the rest) -----

class _LinkCreateOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32)]


class _LinkUpdateOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("flags", ctypes.c_uint32), ("old_prog_fd", ctypes.c_uint32)]


class _XdpAttachOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("old_prog_fd", ctypes.c_int)]


class _XdpQueryOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("prog_id", ctypes.c_uint32), ("drv_prog_id", ctypes.c_uint32),
                ("hw_prog_id", ctypes.c_uint32), ("skb_prog_id", ctypes.c_uint32),
                ("attach_mode", ctypes.c_uint8)]


class _BatchOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class TestRunOpts(ctypes.Structure):
    """libbpf's ``struct bpf_test_run_opts`` (libbpf >= 0.7 layout)."""

    __test__ = False  # not a pytest class
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


@cache
def lib() -> ctypes.CDLL:
    """libbpf with argument types declared for every function we call."""
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    so = ctypes.CDLL(name, use_errno=True)
    i, u32, vp, cp = ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_char_p
    u32p = ctypes.POINTER(ctypes.c_uint32)
    for fn, args in (
        ("bpf_obj_pin", [i, cp]),
        ("bpf_obj_get", [cp]),
        ("bpf_obj_get_info_by_fd", [i, vp, u32p]),
        ("bpf_prog_get_fd_by_id", [u32]),
        ("bpf_map_get_fd_by_id", [u32]),
        ("bpf_map_create", [i, cp, u32, u32, u32, vp]),
        ("bpf_map_lookup_elem", [i, vp, vp]),
        ("bpf_map_update_elem", [i, vp, vp, ctypes.c_uint64]),
        ("bpf_map_delete_elem", [i, vp]),
        ("bpf_map_get_next_key", [i, vp, vp]),
        ("bpf_map_update_batch", [i, vp, vp, u32p, ctypes.POINTER(_BatchOpts)]),
        ("bpf_link_create", [i, i, i, ctypes.POINTER(_LinkCreateOpts)]),
        ("bpf_link_update", [i, i, ctypes.POINTER(_LinkUpdateOpts)]),
        ("bpf_link_detach", [i]),
        ("bpf_xdp_attach", [i, i, u32, ctypes.POINTER(_XdpAttachOpts)]),
        ("bpf_xdp_detach", [i, u32, ctypes.POINTER(_XdpAttachOpts)]),
        ("bpf_xdp_query", [i, i, ctypes.POINTER(_XdpQueryOpts)]),
        ("bpf_prog_test_run_opts", [i, ctypes.POINTER(TestRunOpts)]),
        ("libbpf_num_possible_cpus", []),
    ):
        f = getattr(so, fn)
        f.argtypes = args
        f.restype = ctypes.c_int
    return so


def check(rc: int, what: str) -> int:
    """``rc`` if it is not an error; otherwise OSError naming ``what``."""
    if rc < 0:
        err = ctypes.get_errno() or -rc
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def close(fd: int | None) -> None:
    """Close ``fd`` if it is one; never raises (cleanup paths call it)."""
    if fd is not None and fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


# --- objects in bpffs ----------------------------------------------------------------------

def obj_pin(fd: int, path: str | Path) -> None:
    check(lib().bpf_obj_pin(fd, os.fsencode(str(path))), f"pin {path}")


def obj_get(path: str | Path) -> int:
    """A new fd for the object pinned at ``path``."""
    return check(lib().bpf_obj_get(os.fsencode(str(path))), f"open pin {path}")


def try_obj_get(path: str | Path) -> int | None:
    """Like ``obj_get``, but None when nothing is pinned at ``path``."""
    try:
        return obj_get(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def prog_fd_by_id(prog_id: int) -> int:
    return check(lib().bpf_prog_get_fd_by_id(prog_id), f"open program id {prog_id}")


def map_fd_by_id(map_id: int) -> int:
    return check(lib().bpf_map_get_fd_by_id(map_id), f"open map id {map_id}")


def _info(fd: int) -> bytes:
    buf = ctypes.create_string_buffer(_INFO_BUF)
    size = ctypes.c_uint32(_INFO_BUF)
    check(lib().bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(size)), f"info of fd {fd}")
    return buf.raw[: size.value]


def _u32(raw: bytes, offset: int) -> int:
    return int.from_bytes(raw[offset : offset + 4], "little")


@dataclass(frozen=True)
class ProgInfo:
    """``struct bpf_prog_info``: type, id, tag (offset 8) and name (offset 64)."""

    id: int
    tag: bytes
    name: str


def prog_info(fd: int) -> ProgInfo:
    raw = _info(fd)
    return ProgInfo(_u32(raw, 4), raw[8:16], raw[64:80].split(b"\0", 1)[0].decode(errors="replace"))


@dataclass(frozen=True)
class MapInfo:
    """``struct bpf_map_info``: type, id, key_size, value_size, max_entries, flags, name."""

    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


def map_info(fd: int) -> MapInfo:
    raw = _info(fd)
    name = raw[24:40].split(b"\0", 1)[0].decode(errors="replace")
    return MapInfo(*(_u32(raw, o) for o in range(0, 20, 4)), name=name)


@dataclass(frozen=True)
class LinkInfo:
    """``struct bpf_link_info``; ``ifindex`` is the XDP member of its union (offset 16), 0
    for other link types and once the device is gone or the link was detached."""

    type: int
    id: int
    prog_id: int
    ifindex: int


def link_info(fd: int) -> LinkInfo:
    raw = _info(fd)
    ltype = _u32(raw, 0)
    return LinkInfo(ltype, _u32(raw, 4), _u32(raw, 8), _u32(raw, 16) if ltype == BPF_LINK_TYPE_XDP else 0)


# --- maps --------------------------------------------------------------------------------

def map_create_array(name: str, value_size: int, max_entries: int = 1) -> int:
    """A new array map (u32 keys) made from userspace, e.g. for the loaders' bookkeeping."""
    return check(lib().bpf_map_create(BPF_MAP_TYPE_ARRAY, name.encode()[: BPF_OBJ_NAME_LEN - 1], 4,
                                      value_size, max_entries, None), f"create map {name}")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value stored under ``key`` (``value_size`` bytes), or None if there is none."""
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    rc = lib().bpf_map_lookup_elem(fd, k, v)
    if rc < 0:
        if ctypes.get_errno() == errno.ENOENT:
            return None
        check(rc, f"lookup in map fd {fd}")
    return v.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    check(lib().bpf_map_update_elem(fd, k, v, flags), f"update of map fd {fd}")


def map_delete(fd: int, key: bytes) -> bool:
    """Delete ``key``; False if it was not there."""
    rc = lib().bpf_map_delete_elem(fd, ctypes.create_string_buffer(key, len(key)))
    if rc < 0:
        if ctypes.get_errno() == errno.ENOENT:
            return False
        check(rc, f"delete in map fd {fd}")
    return True


def map_next_key(fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after ``key`` (the first one for None); None at the end."""
    cur = None if key is None else ctypes.create_string_buffer(key, key_size)
    nxt = ctypes.create_string_buffer(key_size)
    rc = lib().bpf_map_get_next_key(fd, cur, nxt)
    if rc < 0:
        if ctypes.get_errno() == errno.ENOENT:
            return None
        check(rc, f"next key in map fd {fd}")
    return nxt.raw


def map_update_batch(fd: int, keys: bytes, values: bytes, count: int) -> None:
    """Write ``count`` packed keys/values in as few syscalls as the kernel allows."""
    if count <= 0:
        return
    key_size, value_size = len(keys) // count, len(values) // count
    kbuf = ctypes.create_string_buffer(keys, len(keys))
    vbuf = ctypes.create_string_buffer(values, len(values))
    opts = _BatchOpts(sz=ctypes.sizeof(_BatchOpts))
    done = 0
    while done < count:
        # The kernel may stop early; it reports how many it wrote in ``n``.
        n = ctypes.c_uint32(count - done)
        check(lib().bpf_map_update_batch(fd, ctypes.addressof(kbuf) + done * key_size,
                                         ctypes.addressof(vbuf) + done * value_size, ctypes.byref(n),
                                         ctypes.byref(opts)), f"batch update of map fd {fd}")
        if n.value == 0:
            raise OSError(errno.EIO, f"batch update of map fd {fd} made no progress")
        done += n.value


@cache
def possible_cpus() -> int:
    """Per-CPU map values hold one slot per *possible* CPU (not online CPU)."""
    return check(lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")


# --- XDP: links (the model both data planes use) and the netlink attachment ------------------

def xdp_link_create(prog_fd: int, ifindex: int, mode: str) -> int:
    """Attach ``prog_fd`` to ``ifindex`` in ``mode`` (native, generic) as a BPF link; the
    link (pinned, or held by an fd) owns the attachment."""
    opts = _LinkCreateOpts(sz=ctypes.sizeof(_LinkCreateOpts), flags=MODE_FLAGS[mode])
    return check(lib().bpf_link_create(prog_fd, ifindex, BPF_XDP, ctypes.byref(opts)),
                 f"XDP link ({mode}) on ifindex {ifindex}")


def link_update(link_fd: int, new_prog_fd: int) -> None:
    """Swap the link's program in one step: packets see the old or the new one, never none."""
    opts = _LinkUpdateOpts(sz=ctypes.sizeof(_LinkUpdateOpts))
    check(lib().bpf_link_update(link_fd, new_prog_fd, ctypes.byref(opts)), "link update")


def link_detach(link_fd: int) -> None:
    check(lib().bpf_link_detach(link_fd), "link detach")


def xdp_netlink_replace(ifindex: int, prog_fd: int, mode: str, old_prog_fd: int) -> None:
    """Atomically swap a *netlink*-attached program (as releases before bpf_link attached
    the proxy) for ``prog_fd``; fails if ``old_prog_fd`` is no longer the one attached."""
    opts = _XdpAttachOpts(sz=ctypes.sizeof(_XdpAttachOpts), old_prog_fd=old_prog_fd)
    check(lib().bpf_xdp_attach(ifindex, prog_fd, MODE_FLAGS[mode] | XDP_FLAGS_REPLACE, ctypes.byref(opts)),
          f"replace XDP program on ifindex {ifindex}")


def xdp_netlink_detach(ifindex: int, mode: str) -> None:
    """Remove a netlink-attached program (a link-owned one refuses: detach its link)."""
    check(lib().bpf_xdp_detach(ifindex, MODE_FLAGS.get(mode, 0), None), f"detach XDP from ifindex {ifindex}")


@dataclass(frozen=True)
class XdpQuery:
    """What rtnetlink reports for one interface: the program id per mode."""

    native: int
    generic: int
    offload: int
    mode: str | None  # None: nothing attached

    @property
    def prog_ids(self) -> set[int]:
        return {p for p in (self.native, self.generic, self.offload) if p}


def xdp_query(ifindex: int) -> XdpQuery:
    opts = _XdpQueryOpts(sz=ctypes.sizeof(_XdpQueryOpts))
    check(lib().bpf_xdp_query(ifindex, 0, ctypes.byref(opts)), f"query XDP on ifindex {ifindex}")
    return XdpQuery(opts.drv_prog_id, opts.skb_prog_id, opts.hw_prog_id,
                    XDP_ATTACHED_MODES.get(opts.attach_mode))


# --- BPF_PROG_TEST_RUN -----------------------------------------------------------------------

def prog_test_run(prog_fd: int, packet: bytes, *, repeat: int = 1, out_size: int,
                  ctx: bytes | None = None) -> tuple[int, bytes, int]:
    """(return value, output packet, kernel's mean ns per run) of one test run."""
    data_in = ctypes.create_string_buffer(packet, len(packet))
    data_out = ctypes.create_string_buffer(out_size)
    opts = TestRunOpts(sz=ctypes.sizeof(TestRunOpts), data_in=ctypes.cast(data_in, ctypes.c_void_p),
                       data_out=ctypes.cast(data_out, ctypes.c_void_p), data_size_in=len(packet),
                       data_size_out=out_size, repeat=repeat)
    if ctx is not None:
        ctx_buf = ctypes.create_string_buffer(ctx, len(ctx))
        opts.ctx_in = ctypes.cast(ctx_buf, ctypes.c_void_p)
        opts.ctx_size_in = len(ctx)
    check(lib().bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)), "BPF_PROG_TEST_RUN")
    return opts.retval, data_out.raw[: opts.data_size_out], opts.duration


# --- RCU grace period ----------------------------------------------------------------------

@cache
def _libc() -> ctypes.CDLL:
    so = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    so.syscall.restype = ctypes.c_long
    return so


def wait_for_readers() -> None:
    """Return only after every BPF program run that started before this call has finished.

    XDP programs run inside RCU read-side sections and MEMBARRIER_CMD_GLOBAL is
    synchronize_rcu(), so this is the kernel's own guarantee that no packet still holds a
    pointer into state we are about to overwrite. Where the command is unavailable
    (nohz_full), sleep far longer than any program run.
    """
    rc = _libc().syscall(_NR_MEMBARRIER, ctypes.c_int(_MEMBARRIER_CMD_GLOBAL), ctypes.c_uint(0),
                         ctypes.c_int(0))
    if rc != 0:
        time.sleep(0.05)
