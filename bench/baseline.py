"""The MAC-swap XDP_TX baseline every data-plane benchmark divides by."""

from __future__ import annotations

from pathlib import Path

from glb_agent.dataplane.bpfcore import testrun

BPF_DIR = Path(__file__).resolve().parents[1] / "bpf"


def load_macswap():
    """Compile and load bpf/bench/macswap.c; returns (bcc.BPF, prog_fd). Keep the BPF alive."""
    from bcc import BPF

    bpf = BPF(src_file=str(BPF_DIR / "bench" / "macswap.c"))
    return bpf, bpf.load_func("xdp_macswap", BPF.XDP).fd


def macswap_ns(packet: bytes, calls: int = 2000, rounds: int = 5) -> float:
    """ns/packet of the baseline on ``packet`` (median of rounds)."""
    _bpf, fd = load_macswap()
    return testrun.time_per_packet(fd, packet, calls=calls, rounds=rounds)
