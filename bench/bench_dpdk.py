"""DPDK director benchmarks: absolute ns/packet and Mpps, each against a MAC-swap loop in the
same process or the same run.

A MAC swap in DPDK costs a few ns per packet, with no per-call overhead like
BPF_PROG_TEST_RUN's ~100 ns, so a ratio would mislead: this reports absolute figures and the
difference (the director's added work).

1. in-memory: ``glb-director-dpdk --bench-mem`` takes one burst of 32 copies of a packet off a
   net_pcap port and runs it through the forwarding core (bpf/director.c as userspace C) and
   through a MAC swap, alternately, ten rounds of BURSTS bursts each. Every burst is timed
   alone (serialising TSC reads around the processing; restoring the packets the previous
   pass rewrote is outside the window) and a round reports its median burst, so preemption
   on a shared machine spoils single bursts, not the figure. Same packets and tables as
   bench/bench_director.py, in two table files (``--widths``): K=2, upstream's
   forwarding_table.bin (primary + secondary: one GUE hop), and K=4, the agent's
   forwarding_rows.bin for the default four candidates (three GUE hops, 8 bytes more on
   the wire). The process stores every row 8 wide either way. Goal: director - macswap
   <= 40 ns/packet.
2. port: Mpps of one lcore receiving from net_pcap (a capture replayed from memory,
   infinite_rx) and transmitting to net_null, director and MAC swap taking turns in one run.
3. veth: packets/s forwarded on a veth in a namespace by the DPDK director (net_af_xdp with
   the steering program) and by the XDP director (attached natively by the agent's
   XdpDirector), taking turns in one run under the same offered load: the generator is this
   binary in MAC-swap mode in the peer namespace, replaying 256 flows from memory into the
   peer interface through net_pcap (tx_iface), on the other CPU.

Run as root, under the bench lock, on a quiet machine:
    flock /tmp/glb-bench.lock .venv/bin/python -m bench.bench_dpdk
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_director import DIR_MAC, VIP, _tables, cases
from tests.dpdk.harness import (
    BINARY,
    Running,
    director_args,
    dpdk_unavailable,
    eal_args,
    write_krows,
    write_pcap,
    write_tables,
)

GOAL_NS = 40.0
GW_MAC = "02:47:4c:00:00:01"
SOURCE_IP = "198.18.0.11"
NAMES = [spec.name for spec, _ in _tables()]


def _files(work: Path, width: int = 2) -> tuple[Path, Path]:
    """K=2: upstream's forwarding_table.bin; wider: the agent's forwarding_rows.bin."""
    if width == 2:
        return write_tables(work, _tables(), ("src_addr",), GW_MAC, SOURCE_IP)
    return write_krows(work, _tables(width), ("src_addr",), GW_MAC, SOURCE_IP, row_width=width)


def in_memory(work: Path, packet: bytes, bursts: int, lcore: str, width: int = 2) -> list[dict]:
    """Ten rounds of (macswap_ns, director_ns) from one process."""
    conf, table = _files(work, width)
    pcap = work / "burst.pcap"
    write_pcap(pcap, [packet] * 32)
    cmd = [str(BINARY), *eal_args(f"net_pcap0,rx_pcap={pcap}", "net_null0", lcores=lcore), "--",
           *director_args(conf, table, names=NAMES, src_mac=DIR_MAC), "--bench-mem", str(bursts)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
    return json.loads(out)["rounds"]


def port_mpps(work: Path, packet: bytes, seconds: float, rounds: int, lcore: str) -> dict[str, list[float]]:
    """Mpps through net_pcap -> net_null, one lcore; the two modes take turns."""
    conf, table = _files(work)
    pcap = work / "flow.pcap"
    write_pcap(pcap, [packet] * 256)
    res: dict[str, list[float]] = {"macswap": [], "director": []}
    for _ in range(rounds):
        for mode in ("macswap", "director"):
            stats = work / f"stats-{mode}.json"
            stats.unlink(missing_ok=True)
            vdev = f"net_pcap0,rx_pcap={pcap},infinite_rx=1"
            cmd = [str(BINARY), *eal_args(vdev, "net_null0", lcores=lcore), "--",
                   *director_args(conf, table, names=NAMES, src_mac=DIR_MAC, stats=stats),
                   "--mode", mode, "--stats-interval-ms", "3600000"]
            d = Running(cmd, stats)
            try:
                first = d.wait_stats(lambda s: s["ports"]["rx"] > 100000)
                time.sleep(seconds)
                last = d.wait_stats(lambda s, f=first: s["updated"] > f["updated"] + seconds / 2)
            finally:
                d.stop()
            dt = last["updated"] - first["updated"]
            res[mode].append((last["ports"]["tx"] - first["ports"]["tx"]) / dt / 1e6)
    return res


def _rate(sample, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Packets/s of a cumulative counter read by ``sample()`` over ``seconds``."""
    t0, c0 = time.monotonic(), sample()
    time.sleep(seconds)
    return (sample() - c0) / (time.monotonic() - t0)


def _tx_of(proc: Running):  # type: ignore[no-untyped-def]
    return lambda: proc.wait_stats(lambda s: True)["ports"]["tx"]


def _xdp_forwarded(director) -> int:  # type: ignore[no-untyped-def]
    return director.counters()["web"]["forwarded_packets"]


def veth_pps(work: Path, seconds: float, rounds: int, lcore: str, gen_lcore: str) -> dict[str, list[float]]:
    """Forwarded packets/s on a veth: DPDK (af_xdp) and XDP directors in turns, same load."""
    import ipaddress

    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from glb_agent.dataplane.director import DirectorSettings, XdpDirector
    from glb_agent.lab import netns
    from tests.support.netns import Lab

    steer = BINARY.parent / "glb-steer.bpf.o"
    res: dict[str, list[float]] = {"offered": [], "dpdk_af_xdp": [], "xdp": []}
    with Lab() as lab:
        client, dns = lab.ns("bdc"), lab.ns("bdd")
        lab.link(client, "c0", dns, "d0", ["198.18.0.1/24"], [f"{SOURCE_IP}/24"])
        netns.run("ethtool", "-K", "c0", "gro", "on", ns=client)  # veth XDP_TX needs GRO or XDP on the peer
        gw, dmac = lab.mac(client, "c0"), lab.mac(dns, "d0")
        conf, table = write_tables(work, _tables(), ("src_addr",), gw, SOURCE_IP)
        gen_pcap = work / "gen.pcap"
        # MAC swap turns (dst gw, src d0) into (dst d0, src gw).
        write_pcap(gen_pcap, [bytes(Ether(dst=gw, src=dmac) / IP(src=f"198.51.100.{i}", dst=VIP)
                                    / TCP(sport=40000 + i, dport=80)) for i in range(256)])
        gen_vdev = f"net_pcap0,rx_pcap={gen_pcap},infinite_rx=1,tx_iface=c0"
        gen_cmd = [str(BINARY), *eal_args(gen_vdev, lcores=gen_lcore), "--",
                   *director_args(conf, table, names=NAMES, stats=work / "gen.json"), "--mode", "macswap"]
        nsenter = ["nsenter", f"--net=/run/netns/{dns}"]
        xdp_vdev = f"net_af_xdp0,iface=d0,start_queue=0,queue_count=1,xdp_prog={steer}"
        dpdk_cmd = [str(BINARY), *eal_args(xdp_vdev, lcores=lcore, mem_mb=256), "--",
                    *director_args(conf, table, names=NAMES, stats=work / "dpdk.json"), "--xdp-steer", "d0",
                    "--stats-interval-ms", "100"]
        settings = DirectorSettings("d0", ipaddress.IPv4Address(SOURCE_IP), gw, ("src_addr",),
                                    pin_dir=Path(f"/sys/fs/bpf/glb-bench-{lab.tag}"), mtu=1500,
                                    xdp_mode="native")
        for _ in range(rounds):
            gen = Running(gen_cmd, work / "gen.json", prefix=["nsenter", f"--net=/run/netns/{client}"])
            try:
                gen.wait_stats(lambda s: s["ports"]["tx"] > 0)
                res["offered"].append(_rate(_tx_of(gen), seconds))
                d = Running(dpdk_cmd, work / "dpdk.json", prefix=nsenter)
                try:
                    d.wait_stats(lambda s: s["ports"]["tx"] > 1000)
                    res["dpdk_af_xdp"].append(_rate(_tx_of(d), seconds))
                finally:
                    d.stop()
                with netns.inside(dns):
                    x = XdpDirector(settings)
                    x.start()
                    x.update_tables(_tables())
                try:
                    res["xdp"].append(_rate(functools.partial(_xdp_forwarded, x), seconds))
                finally:
                    with netns.inside(dns):
                        x.stop()
            finally:
                gen.stop()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bursts", type=int, default=200000, help="bursts of 32 per in-memory round")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per port measurement (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="port measurement rounds (default 3)")
    ap.add_argument("--lcore", default="1", help="the CPU to run on (EAL -l, default 1)")
    ap.add_argument("--gen-lcore", default="0", help="the veth bench's traffic generator CPU")
    ap.add_argument("--no-veth", action="store_true", help="skip the veth (af_xdp vs XDP) measurement")
    ap.add_argument("--widths", default="2,4", help="row widths K of the in-memory tables (default 2,4)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    why = dpdk_unavailable()
    if why:  # `make bench` runs every bench: a host without DPDK skips this one
        print(f"bench_dpdk: skipped: {why}", file=sys.stderr)
        return 0
    packets = cases()
    report: dict[str, dict] = {"in_memory": {}, "port": {}}
    with tempfile.TemporaryDirectory(prefix="bench-dpdk-") as tmp:
        work = Path(tmp)
        for width in widths:
            for name, pkt in packets.items():
                rounds = in_memory(work, pkt, args.bursts, args.lcore, width)
                mac = statistics.median(r["macswap_ns"] for r in rounds)
                dirn = statistics.median(r["director_ns"] for r in rounds)
                added = [r["director_ns"] - r["macswap_ns"] for r in rounds]
                report["in_memory"][f"{name}, K={width}"] = {
                    "macswap_ns": round(mac, 2), "director_ns": round(dirn, 2),
                    "added_ns": round(statistics.median(added), 2), "added_ns_min": round(min(added), 2)}
        pkt = packets["v4 tcp hit"]
        mpps = port_mpps(work, pkt, args.seconds, args.rounds, args.lcore)
        report["port"]["v4 tcp hit"] = {m: round(statistics.median(v), 3) for m, v in mpps.items()}
        report["port"]["v4 tcp hit"]["runs"] = {m: [round(x, 3) for x in v] for m, v in mpps.items()}
        if not args.no_veth:
            pps = veth_pps(work, args.seconds, args.rounds, args.lcore, args.gen_lcore)
            report["veth"] = {k: round(statistics.median(v)) for k, v in pps.items()}
            report["veth"]["runs"] = {k: [round(x) for x in v] for k, v in pps.items()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("in-memory burst processing (32 packets per burst, one lcore), ns/packet, median of 10 rounds"
          " (added: median and best round)")
    print(f"{'case':30} {'macswap':>9} {'director':>9} {'added':>9} {'best':>7}")
    for name, r in report["in_memory"].items():
        flag = "" if r["added_ns"] <= GOAL_NS else f"  (goal <= {GOAL_NS:.0f})"
        print(f"{name:30} {r['macswap_ns']:9.2f} {r['director_ns']:9.2f} {r['added_ns']:9.2f}"
              f" {r['added_ns_min']:7.2f}{flag}")
    p = report["port"]["v4 tcp hit"]
    print(f"\nport net_pcap(infinite_rx) -> net_null, one lcore, v4 tcp hit, Mpps (median of {args.rounds}):")
    print(f"  macswap {p['macswap']:.3f}   director {p['director']:.3f}   runs {p['runs']}")
    if "veth" in report:
        v = report["veth"]
        print(f"\nveth, 256 flows, packets/s forwarded (median of {args.rounds}): offered {v['offered']:,}")
        print(f"  DPDK af_xdp {v['dpdk_af_xdp']:,}   XDP {v['xdp']:,}   runs {v['runs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
