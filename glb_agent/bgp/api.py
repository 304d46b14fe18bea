"""The ExaBGP API pipe as seen from the feed: commands out on stdout, acks in on stdin.

ExaBGP answers every command line with ``done`` or ``error`` (unless acks were switched
off, which the feed survives by timing out), and writes ``shutdown`` before it stops its
helpers. Reading happens on a thread so the feed's poll loop never blocks on the pipe.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import TextIO

ACKS = ("done", "error")


class ExaBgpPipe:
    """Send command batches and match them with ExaBGP's in-order acks."""

    def __init__(self, out: TextIO, inp: TextIO, ack_timeout: float = 2.0) -> None:
        self.out = out
        self.inp = inp
        self.ack_timeout = ack_timeout
        self.acks: queue.Queue[str] = queue.Queue()
        self.closed = threading.Event()  # stdin EOF: ExaBGP is gone
        self.shutdown = threading.Event()  # ExaBGP announced it is stopping
        # Session state per peer address from ExaBGP's neighbor-changes messages
        # ("neighbor A up|connected|down - reason"): (state, detail, time.time()).
        self.sessions: dict[str, tuple[str, str, float]] = {}
        self._reader = threading.Thread(target=self._read, name="exabgp-acks", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self.inp:
                word = line.strip()
                if word in ACKS:
                    self.acks.put(word)
                elif word == "shutdown":
                    self.shutdown.set()
                elif word.startswith("neighbor "):
                    self._neighbor(word)
        except (OSError, ValueError):
            pass
        self.closed.set()

    def _neighbor(self, line: str) -> None:
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[2] in ("up", "down", "connected"):
            detail = parts[3].removeprefix("- ") if len(parts) > 3 else ""
            self.sessions[parts[1]] = (parts[2], detail, time.time())

    def send(self, commands: list[str]) -> list[str]:
        """Write ``commands`` and return one result per command: done, error or timeout.

        Raises BrokenPipeError when ExaBGP no longer reads (it died or is stopping).
        """
        if not commands:
            return []
        while not self.acks.empty():  # late acks of an earlier timed-out batch
            self.acks.get_nowait()
        self.out.write("".join(f"{c}\n" for c in commands))
        self.out.flush()
        deadline = time.monotonic() + self.ack_timeout  # one budget for the whole batch
        results = []
        for _ in commands:
            try:
                results.append(self.acks.get(timeout=max(0.001, deadline - time.monotonic())))
            except queue.Empty:
                results.append("timeout")
        return results
