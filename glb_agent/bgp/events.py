"""One JSON object per line on stderr: ExaBGP passes the feed's stderr through to its own,
so journald (or a test) gets machine-readable events without another log channel."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO


class EventLog:
    """Structured events: ``{"ts": ..., "event": ..., "director": ..., ...}``."""

    def __init__(self, director: str, stream: TextIO | None = None) -> None:
        self.director = director
        self.stream = stream

    def __call__(self, event: str, **fields: object) -> None:
        record = {"ts": round(time.time(), 3), "event": event, "director": self.director, **fields}
        stream = self.stream or sys.stderr
        try:
            stream.write(json.dumps(record, default=str, sort_keys=False) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not stop withdrawals
