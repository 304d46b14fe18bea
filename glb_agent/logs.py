"""Structured logs: one JSON object per line on stderr.

Agents run under systemd, so stderr goes to journald; one self-contained JSON object per
line survives that path intact, is greppable by hand and parseable by log shippers without
a regex per message. When stderr *is* the journal (systemd sets ``JOURNAL_STREAM`` to its
``dev:inode``), each line is prefixed with the syslog ``<N>`` priority so ``journalctl -p``
filters work; anywhere else the line is plain JSON.

Use ``event(log, "backend_down", service="web", backend="198.18.0.21")``: the first
argument is a stable, machine-friendly event name and the keywords become fields.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import sys
from typing import IO, Any

# logging level -> syslog priority (RFC 5424), read by journald from a "<N>" line prefix.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_FIELDS_ATTR = "glb_fields"
_RESERVED = frozenset(("ts", "level", "logger", "event"))


def _jsonable(value: Any) -> Any:
    """Addresses, paths and enums log as their string form rather than failing the line."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"ts", "level", "logger", "event", ...fields}`` on one line."""

    def __init__(self, syslog_prefix: bool = False) -> None:
        super().__init__()
        self.syslog_prefix = syslog_prefix

    def format(self, record: logging.LogRecord) -> str:
        ts = _dt.datetime.fromtimestamp(record.created, tz=_dt.UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in getattr(record, _FIELDS_ATTR, {}).items():
            out[f"field_{key}" if key in _RESERVED else key] = _jsonable(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        line = json.dumps(out, separators=(",", ":"), ensure_ascii=False)
        if self.syslog_prefix:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


def stderr_is_journal(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (stderr) is the socket systemd connected to journald."""
    want = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in want:
        return False
    stream = stream or sys.stderr
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return want == f"{st.st_dev}:{st.st_ino}"


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (it may be replaced after setup)."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup(level: int | str = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Route every ``glb_agent`` logger to ``stream`` (default: stderr) as JSON lines; idempotent."""
    root = logging.getLogger("glb_agent")
    for old in [h for h in root.handlers if getattr(h, "_glb_json", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter(syslog_prefix=stderr_is_journal(stream)))
    handler._glb_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler


def get(name: str) -> logging.Logger:
    """A logger under the ``glb_agent`` hierarchy (``get("health")`` -> ``glb_agent.health``)."""
    return logging.getLogger(name if name.startswith("glb_agent") else f"glb_agent.{name}")


def event(log: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log event ``name`` with structured ``fields`` (kept as JSON keys, not formatted text)."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={_FIELDS_ATTR: fields}, stacklevel=2)
