"""The last known health, kept on disk so an agent restart does not forget it.

Without it a restarted director would assume every backend healthy (the fail-open
default) and send traffic to a proxy it knew was down until ``fall`` probes fail again;
and a flapping backend would escape its damping by an agent restart. The file is JSON,
written atomically (old or new bytes, never a mix) on every verdict change and at stop.
A missing, unreadable or foreign file is not fatal: health is re-learned in a second.

Format (version 1)::

    {"version": 1, "saved_at": 1763686800.1,
     "backends": [{"service": "web", "address": "198.18.0.21", "healthy": false,
                   "since": 1763686790.0, "changes": [1763686750.2, 1763686790.0],
                   "detail": "connect 198.18.0.21:80: connection refused"}]}

Times are wall-clock (``time.time()``): monotonic clocks restart with the host.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from glb_agent import logs
from glb_agent.util import paths
from glb_agent.util.files import write_atomic

FORMAT_VERSION = 1
DEFAULT_PATH = paths.HEALTH_FILE  # /var/lib/glb-agent/health.json: survives a reboot
_log = logs.get("health.persist")

Key = tuple[str, ipaddress.IPv4Address]


@dataclass(frozen=True)
class Saved:
    """One backend's persisted verdict; times are wall-clock seconds."""

    healthy: bool
    since: float
    changes: tuple[float, ...] = ()
    detail: str = ""


def dumps(entries: dict[Key, Saved], now: float | None = None) -> str:
    backends = [
        {"service": svc, "address": str(addr), "healthy": s.healthy, "since": round(s.since, 3),
         "changes": [round(t, 3) for t in s.changes], "detail": s.detail}
        for (svc, addr), s in sorted(entries.items(), key=lambda kv: (kv[0][0], int(kv[0][1])))
    ]
    doc = {"version": FORMAT_VERSION, "saved_at": round(time.time() if now is None else now, 3),
           "backends": backends}
    return json.dumps(doc, indent=1) + "\n"


def save(path: str | Path, entries: dict[Key, Saved]) -> None:
    write_atomic(path, dumps(entries), mode=0o644)


def load(path: str | Path) -> dict[Key, Saved]:
    """The saved verdicts, or {} (logged) when the file is missing or not ours."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logs.event(_log, "health_state_unreadable", logging.WARNING, path=path, error=str(exc))
        return {}
    out: dict[Key, Saved] = {}
    try:
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported version {doc.get('version')!r}")
        for item in doc["backends"]:
            key = (str(item["service"]), ipaddress.IPv4Address(item["address"]))
            healthy = item["healthy"]
            if not isinstance(healthy, bool):
                raise ValueError(f"healthy must be true or false, got {healthy!r}")
            out[key] = Saved(healthy, float(item.get("since", 0.0)),
                             tuple(float(t) for t in item.get("changes", ())), str(item.get("detail", "")))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        logs.event(_log, "health_state_invalid", logging.WARNING, path=path, error=str(exc))
        return {}
    return out
