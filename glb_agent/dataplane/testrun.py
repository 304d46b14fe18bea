"""Run a loaded BPF program on one packet with BPF_PROG_TEST_RUN.

Used by packet-level tests and by the benchmarks: the kernel runs the real, verified,
JIT-compiled program on a buffer we hand it, and returns the verdict and the rewritten
packet. bcc does not wrap this command, so we call libbpf's ``bpf_prog_test_run_opts``
through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from functools import cache

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
XDP_ACTION_NAMES = {0: "ABORTED", 1: "DROP", 2: "PASS", 3: "TX", 4: "REDIRECT"}

# Room for encapsulation headers the program may push in front of the packet.
_OUT_HEADROOM = 512


class _TestRunOpts(ctypes.Structure):
    """libbpf's ``struct bpf_test_run_opts`` (libbpf >= 0.7 layout)."""

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
def _libbpf() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, ctypes.POINTER(_TestRunOpts)]
    lib.bpf_prog_test_run_opts.restype = ctypes.c_int
    return lib


@dataclass(frozen=True)
class RunResult:
    """What the program did with one packet."""

    action: int
    packet: bytes
    duration_ns: int

    @property
    def action_name(self) -> str:
        return XDP_ACTION_NAMES.get(self.action, str(self.action))


def run(prog_fd: int, packet: bytes, repeat: int = 1) -> RunResult:
    """Run ``prog_fd`` on ``packet``; ``duration_ns`` is the kernel's per-run average."""
    lib = _libbpf()
    data_in = ctypes.create_string_buffer(packet, len(packet))
    out_size = len(packet) + _OUT_HEADROOM
    data_out = ctypes.create_string_buffer(out_size)
    opts = _TestRunOpts(
        sz=ctypes.sizeof(_TestRunOpts),
        data_in=ctypes.cast(data_in, ctypes.c_void_p),
        data_out=ctypes.cast(data_out, ctypes.c_void_p),
        data_size_in=len(packet),
        data_size_out=out_size,
        repeat=repeat,
    )
    rc = lib.bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts))
    if rc != 0:
        err = ctypes.get_errno() or -rc
        raise OSError(err, f"BPF_PROG_TEST_RUN failed: {os.strerror(err)}")
    return RunResult(opts.retval, data_out.raw[: opts.data_size_out], opts.duration)


def time_per_packet(prog_fd: int, packet: bytes, calls: int = 2000, rounds: int = 5) -> float:
    """Median over ``rounds`` of the kernel-reported mean ns/packet across ``calls`` runs.

    Programs that rewrite the packet (encap, decap) must run once per call on a fresh copy,
    so we issue many ``repeat=1`` calls and average the kernel's own per-run durations,
    which exclude the syscall overhead.
    """
    medians = []
    for _ in range(rounds):
        total = 0
        for _ in range(calls):
            total += run(prog_fd, packet).duration_ns
        medians.append(total / calls)
    medians.sort()
    return medians[len(medians) // 2]
