"""How far the director is from the floor of its job, as ratios to the MAC-swap baseline.

Four programs on the bench's forwarded IPv4 TCP packet, in one run and by both methods of
``bench_director`` (consecutive and interleaved, several copies of each program, ratios
within each round):

* ``push only``: bpf/bench/encap_floor.c without hashing: bpf_xdp_adjust_head and
  constant outer headers, the least any XDP encapsulator does;
* ``push + SipHash + row``: the same plus SipHash-2-4 of the source address (key as
  immediates) and a table row, the least any GLB-compatible director does;
* ``director``: bpf/director.c with the bench's eight services.

The gap between the last two is all the director's other work (parsing that checks what
it must, binds, generations, counters, VLAN/ICMP/fragments); the second line is a floor
no change to the director's code can go under on this machine.

    sudo .venv/bin/python -m bench.bench_director_floor [--calls 2000] [--rounds 5] [--instances 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import sys

from bench.baseline import BPF_DIR
from bench.bench_director import METHODS, VIP, cases, load_programs, time_round
from glb_agent.dataplane.bpfcore import testrun
from glb_agent.dataplane.director_maps import INCLUDE_DIR, sip_prefix


def _load_floor(hash_too: bool):
    from bcc import BPF

    flags = [f"-I{INCLUDE_DIR}", f"-DFLOOR_HASH={int(hash_too)}",
             f"-DFLOOR_VIP={struct.unpack('<I', socket.inet_aton(VIP))[0]}U"]
    flags += [f"-DFLOOR_SIP{i}={v:#x}ULL" for i, v in enumerate(sip_prefix(bytes(range(16))))]
    bpf = BPF(src_file=str(BPF_DIR / "bench" / "encap_floor.c").encode(), cflags=flags)
    return bpf, bpf.load_func("xdp_encap_floor", BPF.XDP).fd


def run(calls: int, rounds: int, instances: int) -> dict[str, dict[str, float]]:
    keep, trees, baselines = load_programs(instances, ("src_addr",))
    directors = trees[""]
    programs: dict[str, list[int]] = {"macswap": baselines, "push only": [], "push + SipHash + row": [],
                                      "director": directors}
    for _ in range(instances):
        for name, hash_too in (("push only", False), ("push + SipHash + row", True)):
            bpf, fd = _load_floor(hash_too)
            keep.append(bpf)
            programs[name].append(fd)
    pkt = cases()["v4 tcp hit"]
    for name, fds in programs.items():
        for fd in fds:
            if testrun.run(fd, pkt).action != testrun.XDP_TX:
                raise SystemExit(f"{name}: the bench packet was not forwarded")
    copies = {name: [(fd, pkt) for fd in fds] for name, fds in programs.items()}
    ratios: dict[str, dict[str, list[float]]] = {m: {n: [] for n in programs if n != "macswap"}
                                                 for m, _ in METHODS}
    for _ in range(rounds):
        for method, block in METHODS:
            med = time_round(copies, calls, block)
            for name in ratios[method]:
                ratios[method][name].append(med[name] / med["macswap"])
    del keep
    return {m: {n: round(statistics.median(r), 3) for n, r in per.items()} for m, per in ratios.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--instances", type=int, default=3)
    args = ap.parse_args(argv)
    if args.calls < 10 or args.rounds < 1 or not 1 <= args.instances <= 16:
        ap.error("--calls >= 10, --rounds >= 1 and --instances 1-16")
    for method, per in run(args.calls, args.rounds, args.instances).items():
        print(f"{method}: " + "  ".join(f"{name} {ratio:.2f}x" for name, ratio in per.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
