"""Counter and reason names of the BPF programs, read from ``bpf/include/glb_reasons.h``.

The programs index their per-CPU counters by C enums; the agent needs the same names in the
same order for metrics, status and tests. Reading them from the header the programs are
compiled from (instead of keeping a Python copy) means a reason added in C appears
everywhere with no second list to forget. The header's rules (one enumerator per line, the
first ``= 0``, no other values, the count last) are checked here, so a header edit that would
shift indices fails loudly instead of mislabelling counters.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from glb_agent.errors import GlbError

REASONS_H = Path(__file__).resolve().parents[1] / "bpf" / "include" / "glb_reasons.h"


def enum_names(enum: str, prefix: str, count: str, text: str | None = None) -> tuple[str, ...]:
    """Names of ``enum`` in index order, lowercased and without ``prefix``; ``count`` must be
    the last enumerator (it is not a name). ``text`` defaults to glb_reasons.h."""
    if text is None:
        text = REASONS_H.read_text()
    body = re.search(rf"\benum\s+{re.escape(enum)}\s*\{{(.*?)\}};", text, re.S)
    if not body:
        raise GlbError(f"{REASONS_H.name}: enum {enum} not found")
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", body.group(1), flags=re.S)
    entries = [e.strip() for e in code.split(",") if e.strip()]
    if not entries or entries[-1] != count:
        raise GlbError(f"{REASONS_H.name}: enum {enum} must end with {count}")
    names: list[str] = []
    for i, entry in enumerate(entries[:-1]):
        m = re.fullmatch(rf"{re.escape(prefix)}([A-Z0-9_]+)(?:\s*=\s*(\d+))?", entry)
        value = m.group(2) if m else None
        if not m or (value != "0" if i == 0 else value is not None):
            raise GlbError(f"{REASONS_H.name}: enum {enum}: entry {entry!r} breaks the rules "
                           f"(names {prefix}*, the first = 0, no other values)")
        names.append(m.group(1).lower())
    return tuple(names)


@cache
def director_reasons() -> tuple[str, ...]:
    """enum glb_reason: why the director passed, dropped or forwarded a packet."""
    return enum_names("glb_reason", "GLB_R_", "GLB_NR_REASONS")


@cache
def proxy_counters() -> tuple[str, ...]:
    """enum proxy_counter: what the proxy received and what it did with it."""
    return enum_names("proxy_counter", "PROXY_C_", "PROXY_C_MAX")
