"""Run a loaded XDP program on one packet with BPF_PROG_TEST_RUN.

Used by the packet tests, the differential fuzzer and the benchmarks: the kernel runs the
real, verified, JIT-compiled program on a buffer we hand it and returns the verdict and
the rewritten packet. ``ingress_ifindex`` makes the run look as if the packet arrived on
that device (the proxy's forward path answers XDP_TX or REDIRECT depending on it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from glb_agent.dataplane.bpfcore import binding

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)  # enum xdp_action
XDP_ACTION_NAMES = {XDP_ABORTED: "ABORTED", XDP_DROP: "DROP", XDP_PASS: "PASS", XDP_TX: "TX",
                    XDP_REDIRECT: "REDIRECT"}

# Room for encapsulation headers the program may push in front of the packet.
OUT_HEADROOM = 512
# struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
_XDP_MD = struct.Struct("=6I")


@dataclass(frozen=True)
class RunResult:
    """What the program did with one packet."""

    action: int
    packet: bytes
    duration_ns: int

    @property
    def action_name(self) -> str:
        return XDP_ACTION_NAMES.get(self.action, str(self.action))


def run(prog_fd: int, packet: bytes, repeat: int = 1, ingress_ifindex: int = 0) -> RunResult:
    """Run ``prog_fd`` on ``packet``; ``duration_ns`` is the kernel's per-run average."""
    ctx = _XDP_MD.pack(0, len(packet), 0, ingress_ifindex, 0, 0) if ingress_ifindex else None
    action, out, duration = binding.prog_test_run(prog_fd, packet, repeat=repeat,
                                                  out_size=len(packet) + OUT_HEADROOM, ctx=ctx)
    return RunResult(action, out, duration)


def time_per_packet(prog_fd: int, packet: bytes, calls: int = 2000, rounds: int = 5,
                    ingress_ifindex: int = 0) -> float:
    """Median over ``rounds`` of the kernel-reported mean ns/packet across ``calls`` runs.

    Programs that rewrite the packet (encap, decap) must run once per call on a fresh copy,
    so we issue many ``repeat=1`` calls and average the kernel's own per-run durations,
    which exclude the syscall overhead.
    """
    medians = []
    for _ in range(rounds):
        total = sum(run(prog_fd, packet, ingress_ifindex=ingress_ifindex).duration_ns for _ in range(calls))
        medians.append(total / calls)
    medians.sort()
    return medians[len(medians) // 2]
