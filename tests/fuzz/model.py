"""What every model and runner returns: a verdict, the bytes that leave, and the counter cell.

Verdicts are XDP action numbers (DROP 1, PASS 2, TX 3, REDIRECT 4) because the first data
planes are XDP programs; another data plane (the DPDK director of issue 16) maps its own
"drop / to the kernel / back out" onto the same three numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
VERDICT_NAMES = {0: "ABORTED", 1: "DROP", 2: "PASS", 3: "TX", 4: "REDIRECT"}


@dataclass(frozen=True)
class Outcome:
    """A model's prediction for one frame.

    ``group`` is the counter group the packet lands in (the director's table name or
    ``_unmatched``; the proxy uses ``""``) and ``reason`` the counter within it; a packet the
    program does not count at all (the proxy's "not GUE for us") has ``reason`` None.
    """

    verdict: int
    frame: bytes
    reason: str | None
    group: str = ""

    def describe(self) -> str:
        return f"{VERDICT_NAMES.get(self.verdict, self.verdict)} {self.group}/{self.reason} {self.frame.hex()}"
