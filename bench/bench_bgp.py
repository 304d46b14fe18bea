"""How fast the router stops sending a VIP to a director, per cause (real BIRD + ExaBGP).

Run as root from the repo root: ``.venv/bin/python -m bench.bench_bgp [--rounds N]``.
Builds the same namespaces as tests/bgp (hold time 3 s, feed poll 100 ms) and times,
from the action to the router's kernel route losing the director's next hop:
drain (CLI, including its ~0.3 s Python start), data plane detached, feed SIGTERM,
ExaBGP SIGKILL (TCP closes at once) and ExaBGP frozen by SIGSTOP (hold timer). Also
reports the feed's CPU use while idle-polling.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.bgp.bgplab import DIRECTOR_IPS, BgpLab
from tests.support.netns import Lab

D1, D2 = DIRECTOR_IPS["d1"], DIRECTOR_IPS["d2"]
BOTH = {D1, D2}


def _timed(lab: BgpLab, action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    lab.wait_nexthops({D2}, timeout=10)
    return time.monotonic() - start


def _restore(lab: BgpLab, action: Callable[[], object]) -> None:
    action()
    lab.wait_nexthops(BOTH, timeout=15)


def _restart(lab: BgpLab) -> None:
    proc = lab.directors["d1"].proc
    if proc is not None:
        proc.wait(timeout=5)
    lab.start_exabgp("d1")


def _feed_cpu(lab: BgpLab, seconds: float = 5.0) -> float:
    pid = lab.feed_pids("d1")[0]

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    before = ticks()
    time.sleep(seconds)
    return (ticks() - before) / os.sysconf("SC_CLK_TCK") / seconds * 100


def run(rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    with Lab() as netlab, tempfile.TemporaryDirectory(prefix="bench-bgp-") as tmp:
        lab = BgpLab.create(netlab, Path(tmp))
        for name in lab.directors:
            lab.attach_xdp(name)
            lab.start_exabgp(name)
        lab.wait_nexthops(BOTH, timeout=20)
        results["feed CPU % (poll 100 ms)"] = [_feed_cpu(lab)]
        cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "drain (glb-agent drain)": (lambda: lab.agent("d1", "drain"), lambda: lab.agent("d1", "undrain")),
            "data plane detached": (lambda: lab.detach_xdp("d1"), lambda: lab.attach_xdp("d1")),
            "feed SIGTERM": (lambda: os.kill(lab.feed_pids("d1")[0], signal.SIGTERM), lambda: None),
            "ExaBGP SIGKILL": (lambda: lab.signal_exabgp("d1", signal.SIGKILL), lambda: _restart(lab)),
            "ExaBGP SIGSTOP (hold 3 s)": (lambda: lab.signal_exabgp("d1", signal.SIGSTOP),
                                          lambda: lab.signal_exabgp("d1", signal.SIGCONT)),
        }
        for name, (action, undo) in cases.items():
            for _ in range(rounds):
                results.setdefault(name, []).append(_timed(lab, action))
                _restore(lab, undo)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = run(args.rounds)
    print(f"{'cause -> router route change':34} {'median s':>9} {'max s':>8}  n")
    for name, values in results.items():
        print(f"{name:34} {statistics.median(values):9.2f} {max(values):8.2f}  {len(values)}")


if __name__ == "__main__":
    main()
