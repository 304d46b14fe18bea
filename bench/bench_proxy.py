"""Proxy XDP cost per packet, as a ratio to the MAC-swap baseline timed in the same run.

Paths measured (BPF_PROG_TEST_RUN, many ``repeat=1`` runs because the program rewrites
the packet; the kernel's own per-run time, so syscall overhead is excluded):

* accept/established: GUE -> socket lookup finds the connection -> decapsulate (the
  steady-state path of every packet of a connection on its primary proxy);
* accept/syn: GUE -> SYN -> decapsulate (no socket lookup);
* forward: GUE -> lookup misses -> route lookup -> rewrite -> XDP_TX (second chance);
* drop/spoofed: GUE from a sender that is not allowed (the cost of an attack packet);
* pass/not-gue: a plain TCP packet to the proxy (the tax on all other traffic).

The program runs in a throw-away namespace set up like a proxy host (VIP on lo, a real
established connection, a next hop with a neighbour entry), attached by the real loader.
Run: ``.venv/bin/python -m bench.bench_proxy [--calls N] [--rounds N]`` (root, bcc).
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from bench.baseline import load_macswap
from glb_agent.dataplane.bpfcore import testrun
from glb_agent.dataplane.proxy import ProxyDataplane, ProxySettings
from tests.proxy.conftest import CLIENT4, DIRECTOR, PEER, PROXY, VIP4, VIP6, make_proxy_ns
from tests.proxy.support import gue_frame, netns, run_on, tcp_packet
from tests.support.netns import Lab

# Ethernet header to the proxy's MAC, ethertype IPv4.
ETHER_IPV4 = bytes.fromhex("020000000021" "020000000001" "0800")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="repeat=1 runs per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median is reported")
    args = parser.parse_args()

    pin_dir = Path("/sys/fs/bpf") / f"glb-bench-proxy-{os.getpid()}"
    with Lab() as lab:
        ns = make_proxy_ns(lab)
        with netns(ns):
            dp = ProxyDataplane(ProxySettings(interface="px0", address=PROXY, allowed_senders=(DIRECTOR,),
                                              peers=(PEER,), vips=(VIP4, VIP6), pin_dir=pin_dir))
            dp.start()
            prog_fd = dp.prog_fd()
            ifindex = socket.if_nametoindex("px0")
            listener = socket.create_server((VIP4, 80))
            client = socket.create_connection((VIP4, 80), source_address=(CLIENT4, 0))
            server, _ = listener.accept()
            cport = client.getsockname()[1]
            payload = b"x" * 64
            cases = {
                "accept/established": gue_frame(tcp_packet(CLIENT4, VIP4, cport, 80, payload=payload),
                                                src=DIRECTOR, dst=PROXY, hops=[PEER]),
                "accept/syn": gue_frame(tcp_packet("192.0.2.66", VIP4, 40000, 80, flags="S", payload=payload),
                                        src=DIRECTOR, dst=PROXY, hops=[PEER]),
                "forward": gue_frame(tcp_packet("192.0.2.66", VIP4, 40001, 80, payload=payload),
                                     src=DIRECTOR, dst=PROXY, hops=[PEER]),
                "drop/spoofed": gue_frame(tcp_packet("192.0.2.66", VIP4, 40002, 80, payload=payload),
                                          src="192.0.2.66", dst=PROXY, hops=[PEER]),
                "pass/not-gue": ETHER_IPV4 + tcp_packet(DIRECTOR, PROXY, 40003, 22, payload=payload),
            }
            expect = {"accept/established": "PASS", "accept/syn": "PASS", "forward": "TX",
                      "drop/spoofed": "DROP", "pass/not-gue": "PASS"}
            _macswap_bpf, macswap_fd = load_macswap()
            try:
                print(f"{'path':<20} {'bytes':>5} {'ns/pkt':>8} {'macswap':>8} {'ratio':>6}")
                for name, frame in cases.items():
                    got = run_on(prog_fd, frame, ifindex).action_name
                    if got != expect[name]:
                        raise SystemExit(f"{name}: expected {expect[name]}, program said {got}")
                    base = testrun.time_per_packet(macswap_fd, frame, args.calls, args.rounds)
                    cost = testrun.time_per_packet(prog_fd, frame, args.calls, args.rounds, ifindex)
                    print(f"{name:<20} {len(frame):>5} {cost:>8.1f} {base:>8.1f} {cost / base:>5.2f}x",
                          flush=True)
            finally:
                for s in (client, server, listener):
                    s.close()
                os.close(prog_fd)
                dp.stop()


if __name__ == "__main__":
    main()
