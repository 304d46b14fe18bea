"""``python -m tests.fuzz``: the differential packet fuzzer from the command line (``make fuzz``).

    python -m tests.fuzz run [TARGET ...] [--seed S] [--count N] [--start I]
    python -m tests.fuzz run TARGET --seed S --index I          # replay one packet
    python -m tests.fuzz dump TARGET --seed S --count N --out corpus.pcap   # no root needed
    python -m tests.fuzz run TARGET --pcap corpus.pcap          # a saved corpus instead

Defaults come from FUZZ_SEED, FUZZ_COUNT and FUZZ_TARGETS. Exit status: 0 when every packet
agreed with the model, 1 on any mismatch (each printed with a reproducer), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tests.fuzz.packets import pcap_bytes, read_pcap


class PcapCorpus:
    """Frames of a pcap file in place of a generator (``--pcap``): packet ``i`` is frame ``i``,
    whatever the seed, so reproducers keep working on a saved or captured corpus."""

    def __init__(self, path: Path) -> None:
        self.frames = read_pcap(path.read_bytes())

    def make(self, seed: int, index: int) -> tuple[str, bytes, list[str]]:
        return "pcap", self.frames[index], []


def _generator(name: str) -> object:
    """The generator alone (for corpus dumps): no program, no root."""
    if name.startswith("proxy"):
        from tests.fuzz.gen_proxy import ProxyGen, ProxyWorld

        b = bytes.fromhex
        world = ProxyWorld(proxy=b("c6120015"), proxy_mac=b("020000000021"), director=b("c6120001"),
                           peer=b("c6120016"), unresolved=b("c6120063"), stranger=b("c612004d"),
                           vip4=b("cb00710a"), vip6=b("20010db8010000000000000000000010"),
                           prefix4=(0xCB007180, 25), prefix6=(0x20010DB8030000000000000000000000, 64),
                           port=80, closed_port=81, established4=((b("c6336407"), 40001),),
                           established6=((b("20010db8020000000000000000000007"), 40001),))
        return ProxyGen(world)
    from tests.dataplane.conftest import standard_tables
    from tests.fuzz.gen_director import DirectorGen

    return DirectorGen([spec for spec, _ in standard_tables()])


def main(argv: list[str] | None = None) -> int:
    from tests.fuzz.env import TARGETS

    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="fuzz the real programs against the models")
    run.add_argument("targets", nargs="*", metavar="TARGET", help=f"any of {', '.join(TARGETS)} (default: all)")
    run.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "1")))
    run.add_argument("--count", type=int, default=int(os.environ.get("FUZZ_COUNT", "1000000")))
    run.add_argument("--start", type=int, default=0, help="first packet index")
    run.add_argument("--index", type=int, help="replay this one packet and explain it")
    run.add_argument("--pcap", type=Path, help="run the frames of this pcap instead of generating them")
    run.add_argument("--chunk", type=int, default=2048, help="packets per counter comparison")
    run.add_argument("--keep", type=int, default=10, help="mismatches printed per target")
    dump = sub.add_parser("dump", help="write the generated frames as a pcap (the corpus)")
    dump.add_argument("target", choices=TARGETS)
    dump.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "1")))
    dump.add_argument("--count", type=int, default=10000)
    dump.add_argument("--start", type=int, default=0)
    dump.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        args.targets = args.targets or os.environ.get("FUZZ_TARGETS", ",".join(TARGETS)).split(",")
        unknown = [t for t in args.targets if t not in TARGETS]
        if unknown:
            ap.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")

    if args.cmd == "dump":
        gen = _generator(args.target)
        frames = [gen.make(args.seed, i)[1] for i in range(args.start, args.start + args.count)]  # type: ignore[attr-defined]
        args.out.write_bytes(pcap_bytes(frames))
        print(f"wrote {len(frames)} frames of {args.target} (seed {args.seed}) to {args.out}")
        return 0

    from tests.fuzz.env import target
    from tests.fuzz.harness import fuzz, replay
    from tests.support.netns import bpf_unavailable

    why = bpf_unavailable()
    if why:
        print(f"cannot load BPF programs here: {why}", file=sys.stderr)
        return 2
    failed = False
    for name in args.targets:
        with target(name) as t:
            count = args.count
            if args.pcap:
                t.gen = PcapCorpus(args.pcap)
                count = min(count, len(t.gen.frames) - args.start)
            if args.index is not None:
                text = replay(t, args.seed, args.index)
                print(text)
                failed |= text.endswith("MISMATCH")
                continue
            res = fuzz(t, args.seed, count, start=args.start, chunk=args.chunk, keep=args.keep,
                       progress=lambda s: print(s, file=sys.stderr, flush=True))
            for m in res.mismatches:
                print(m.report())
            print(res.summary(), flush=True)
            failed |= res.mismatch_count > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
