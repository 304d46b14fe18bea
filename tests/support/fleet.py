"""A small glb.yml for tests that need a whole fleet file, and the state a running agent
leaves behind, so each test states only what it is about.

The fleet: directors d1.. at 198.18.0.11.., proxies p1.. at 198.18.0.21.., one BGP peer r1,
and one service ``web`` on 203.0.113.10:80 whose backends are the proxies. Extra keys are
written as JSON flow mappings (valid YAML), so any value can be passed through.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SECRET = "0123456789abcdef-secret"


def proxy_address(i: int) -> str:
    """Proxy ``p{i}``'s address (i from 1)."""
    return f"198.18.0.{20 + i}"


def director_address(i: int) -> str:
    """Director ``d{i}``'s address (i from 1)."""
    return f"198.18.0.{10 + i}"


def _flow(entries: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in entries.items() if v is not None) + "}"


def fleet_yaml(
    backends: Mapping[str, str] | int = 2,
    *,
    proxies: int | None = None,
    directors: int = 1,
    fleet: Mapping[str, Any] | None = None,
    peer: Mapping[str, Any] | None = None,
    director: Mapping[str, Any] | None = None,
    healthcheck: Mapping[str, Any] | None = None,
) -> str:
    """glb.yml text. ``backends``: address -> state in order (``active`` writes no state),
    or a count of active proxies p1..pN. ``proxies`` defaults to one per backend; ``fleet``,
    ``peer`` and ``director`` (d1; d2.. have the defaults) add keys to (or, with None values,
    drop keys from) those entries - ``fleet={"secret": None, "secret_file": "glb.secret"}``."""
    if isinstance(backends, int):
        backends = {proxy_address(i): "active" for i in range(1, backends + 1)}
    n_proxies = len(backends) if proxies is None else proxies
    fleet_keys = {"name": "t", "secret": SECRET, **(fleet or {})}
    peer_keys = {"name": "r1", "address": "198.18.0.1", "asn": 65000, **(peer or {})}
    director_keys = [{"name": f"d{i}", "address": director_address(i), "interface": "eth0",
                      "gateway_mac": "02:00:00:00:00:01", **((director or {}) if i == 1 else {})}
                     for i in range(1, directors + 1)]
    lines = ["fleet:", *(f"  {k}: {json.dumps(v)}" for k, v in fleet_keys.items() if v is not None),
             "bgp:", "  local_asn: 65100", f"  peers: [{_flow(peer_keys)}]",
             "directors:", *(f"  - {_flow(d)}" for d in director_keys),
             "proxies:",
             *(f"  - {{name: p{i}, address: {proxy_address(i)}, interface: eth0}}"
               for i in range(1, n_proxies + 1)),
             "services:", "  - name: web", "    vips: [203.0.113.10]", "    ports: [80]"]
    if healthcheck is not None:
        lines.append(f"    healthcheck: {_flow(healthcheck)}")
    lines.append("    backends:")
    lines += [f"      - {_flow({'address': a} if s == 'active' else {'address': a, 'state': s})}"
              for a, s in backends.items()]
    return "\n".join(lines) + "\n"


def write_fleet(path: Path, *args: Any, **kwargs: Any) -> Path:
    """``fleet_yaml(...)`` written to ``path`` (returned)."""
    path.write_text(fleet_yaml(*args, **kwargs))
    return path


def live_state(directory: Path, config: Path) -> None:
    """What a running director agent leaves in its state dir after loading ``config``: the
    live tables and their row semantics (what ``glb-agent apply`` diffs an edit against)."""
    from glb_agent.agent.director import LIVE_TABLES_FILE, STATUS_FILE, table_status
    from glb_agent.config import load_config
    from glb_agent.dataplane.director_config import table_rows
    from glb_agent.table import upstream_json

    tables = table_rows(load_config(config))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LIVE_TABLES_FILE).write_text(upstream_json.dumps([s for s, _ in tables]))
    (directory / STATUS_FILE).write_text(json.dumps({"services": table_status(tables, {})}))
