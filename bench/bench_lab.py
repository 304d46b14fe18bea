"""End-to-end HTTP throughput through the VIP versus straight to one proxy, same client, same run.

Through the VIP every request crosses the router's ECMP, a director's XDP encapsulation and a
proxy's eBPF decapsulation; straight to a proxy it crosses only the router. Reports keep-alive
requests/s (wrk) and new connections/s (ab, no keep-alive) and their ratios. Needs root; builds
the namespace lab and removes it afterwards.
"""

from __future__ import annotations

import re

from glb_agent.lab import netns
from glb_agent.lab import run as lab
from glb_agent.lab.topology import CLIENT_NS

VIP, PROXY = "203.0.113.10", "198.18.0.21"


def wrk_rps(target: str, seconds: int = 5) -> float:
    out = netns.run("wrk", "-t1", "-c16", f"-d{seconds}s", f"http://{target}/", ns=CLIENT_NS,
                    timeout=60).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def ab_cps(target: str, n: int = 2000) -> float:
    out = netns.run("ab", "-q", "-n", str(n), "-c", "8", f"http://{target}/", ns=CLIENT_NS,
                    timeout=120).stdout
    return float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))


def main() -> None:
    lab.up()
    try:
        rows = []
        for name, fn in (("keep-alive requests/s (wrk)", wrk_rps), ("new connections/s (ab)", ab_cps)):
            fn(PROXY)  # warm-up (ARP, page cache, JIT)
            direct, via = fn(PROXY), fn(VIP)
            rows.append((name, via, direct))
        print(f"\n{'metric':<30}{'via VIP':>12}{'direct':>12}{'ratio':>8}")
        for name, via, direct in rows:
            print(f"{name:<30}{via:>12.0f}{direct:>12.0f}{via / direct:>8.2f}")
    finally:
        lab.down(quiet=True)


if __name__ == "__main__":
    main()
