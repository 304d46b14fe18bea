"""What ``table show`` prints: per table its binds, backends and each backend's row share.

The share of primary rows is what an operator checks after draining or adding a proxy
("did it really stop getting new flows?"), so it is computed from the rows themselves
rather than predicted from states.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from glb_agent.table.send_order import two_columns
from glb_agent.table.spec import TABLE_ROWS, Bind, TableSpec


def bind_text(b: Bind) -> str:
    addr = b.stored_address
    where = str(addr) if b.network.prefixlen == addr.max_prefixlen else f"{addr}/{b.network.prefixlen}"
    ports = str(b.port_start) if b.port_start == b.port_end else f"{b.port_start}-{b.port_end}"
    return f"{b.proto} {where} port {ports}"


def table_label(spec: TableSpec, index: int) -> str:
    return f"table {index} {spec.name!r}" if spec.name else f"table {index}"


def summarize(spec: TableSpec, rows: np.ndarray, index: int, show_rows: int = 0) -> dict[str, Any]:
    """A JSON-ready description of one table; ``show_rows`` leading rows are included.
    ``rows`` are send orders: "primary" is where a row sends new flows first, "secondary"
    the first hop of its GUE hop list."""
    n = len(spec.backends)
    cols = two_columns(rows)
    primary = np.bincount(cols[:, 0], minlength=n)
    secondary = np.bincount(cols[:, 1], minlength=n)
    doc: dict[str, Any] = {
        "index": index,
        "name": spec.name,
        "hash_key": spec.hash_key.hex(),
        "seed": spec.seed.hex() if spec.seed else None,
        "semantics": spec.semantics,
        "candidates": spec.candidates,
        "width": spec.width if spec.backends else 0,
        "binds": [bind_text(b) for b in spec.binds],
        "backends": [
            {
                "index": i,
                "ip": str(b.ip),
                "state": b.state,
                "healthy": b.healthy,
                "primary_rows": int(primary[i]),
                "primary_share": round(float(primary[i]) / TABLE_ROWS, 6),
                "secondary_rows": int(secondary[i]),
            }
            for i, b in enumerate(spec.backends)
        ],
    }
    if show_rows:
        doc["rows"] = [
            {"row": r, "primary": str(spec.backends[p].ip), "secondary": str(spec.backends[s].ip),
             "send_order": [str(spec.backends[i].ip) for i in order if i >= 0]}
            for r, ((p, s), order) in enumerate(zip(cols[:show_rows].tolist(), rows[:show_rows].tolist(),
                                                    strict=True))
        ]
    return doc


def render_text(doc: dict[str, Any], spec: TableSpec) -> str:
    lines = [f"{table_label(spec, doc['index'])}: {len(doc['backends'])} backends, {len(doc['binds'])} binds"]
    lines.append(f"  hash_key {doc['hash_key']}")
    lines.append(f"  seed     {doc['seed'] or '(not stored in binary tables)'}")
    if doc["semantics"] == "candidates":
        k = doc["candidates"]
        capped = f" (K={k}, capped by the backends)" if doc["width"] < k else ""
        lines.append(f"  rows     {doc['width']} candidates each{capped}, sent to the first usable one")
    lines.extend(f"  bind {b}" for b in doc["binds"])
    width = max((len(b["ip"]) for b in doc["backends"]), default=2)
    lines.append(
        f"  {'#':>4}  {'backend':<{width}}  {'state':<8}  {'health':<9}  {'primary':>15}  {'secondary':>9}"
    )
    for b in doc["backends"]:
        health = "healthy" if b["healthy"] else "UNHEALTHY"
        lines.append(
            f"  {b['index']:>4}  {b['ip']:<{width}}  {b['state']:<8}  {health:<9}  "
            f"{b['primary_rows']:>6} {100 * b['primary_share']:>6.2f}%  {b['secondary_rows']:>9}"
        )
    for r in doc.get("rows", []):
        lines.append(f"  row {r['row']:>5}: {' then '.join(r['send_order'])}")
    return "\n".join(lines)
