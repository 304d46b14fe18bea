"""Upstream's forwarding-table JSON (the input of ``glb-director-cli build-config``).

Operators migrating from upstream GLB already have these files, and upstream's
healthchecker rewrites them, so we read and write the same shape::

    {"tables": [{"name": ..., "hash_key": 32 hex, "seed": 32 hex,
                 "binds": [{"ip": "a.b.c.d[/bits]", "proto": "tcp"|"udp",
                            "port": N | "port_start": N, "port_end": N}],
                 "backends": [{"ip": ..., "state": "active"|"draining"|"filling"|"inactive",
                               "healthy": bool, "healthchecks": {"http": N, "gue": N}}]}]}

Where upstream is lax we follow it only when that cannot hide a mistake:
- a missing ``healthy`` means unhealthy, as upstream reads it, so the same file gives the
  same table on both; a non-boolean ``healthy`` is an error rather than a silent false;
- unknown keys are errors (a typo such as ``healty`` would otherwise flip health);
- a bind's address keeps its host bits ("10.0.0.7/24"), as upstream stores it unmasked;
- duplicate backend IPs are errors (they would tie in the ranking, and diffs key by IP).
Every error is an ``InputError`` naming the file and the JSON path, e.g.
``tables[1].backends[3].state``. Output is deterministic: same specs, same bytes.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

from glb_agent.errors import InputError
from glb_agent.table.spec import (
    UPSTREAM_MAX_BINDS,
    Backend,
    Bind,
    IPAddress,
    TableSpec,
)
from glb_agent.util.files import write_atomic

STATES = ("active", "draining", "filling", "inactive")
PROTOCOLS = ("tcp", "udp")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{32}")
_TABLE_KEYS = {"name", "hash_key", "seed", "binds", "backends"}
_BIND_KEYS = {"ip", "proto", "port", "port_start", "port_end"}
_BACKEND_KEYS = {"ip", "state", "healthy", "healthchecks"}


class _Reader:
    """Walks the parsed JSON keeping the current path for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> InputError:
        return InputError(message, where=f"{self.source}: {path}" if path else self.source)

    def obj(self, value: Any, path: str, allowed: set[str], required: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail(_join(path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - value.keys()):
            raise self.fail(_join(path, key), "missing")
        return value

    def array(self, value: Any, path: str) -> list:
        if not isinstance(value, list):
            raise self.fail(path, f"must be an array, got {_kind(value)}")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"must be a string, got {_kind(value)}")
        return value

    def port(self, value: Any, path: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
            raise self.fail(path, f"must be an integer port 0..65535, got {value!r}")
        return value

    def key(self, value: Any, path: str) -> bytes:
        text = self.string(value, path)
        if not _HEX_KEY.fullmatch(text):
            raise self.fail(path, f"must be 32 hex digits (16 bytes), got {text!r}")
        return bytes.fromhex(text)

    def address(self, value: Any, path: str) -> IPAddress:
        text = self.string(value, path)
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise self.fail(path, f"not an IPv4 or IPv6 address: {text!r}") from None

    def tables(self, doc: Any) -> list[TableSpec]:
        doc = self.obj(doc, "", {"tables"}, {"tables"})
        return [self.table(t, f"tables[{i}]") for i, t in enumerate(self.array(doc["tables"], "tables"))]

    def table(self, value: Any, path: str) -> TableSpec:
        t = self.obj(value, path, _TABLE_KEYS, _TABLE_KEYS - {"name"})
        name = self.string(t.get("name", ""), _join(path, "name"))
        binds = self.array(t["binds"], _join(path, "binds"))
        if len(binds) > UPSTREAM_MAX_BINDS:
            raise self.fail(
                _join(path, "binds"), f"{len(binds)} binds, the format holds {UPSTREAM_MAX_BINDS}"
            )
        backends = [
            self.backend(b, f"{path}.backends[{i}]")
            for i, b in enumerate(self.array(t["backends"], _join(path, "backends")))
        ]
        seen: dict[IPAddress, int] = {}
        for i, b in enumerate(backends):
            if b.ip in seen:
                raise self.fail(f"{path}.backends[{i}].ip", f"{b.ip} duplicates backends[{seen[b.ip]}]")
            seen[b.ip] = i
        return TableSpec(
            name=name,
            hash_key=self.key(t["hash_key"], _join(path, "hash_key")),
            seed=self.key(t["seed"], _join(path, "seed")),
            binds=tuple(self.bind(b, f"{path}.binds[{i}]") for i, b in enumerate(binds)),
            backends=tuple(backends),
        )

    def bind(self, value: Any, path: str) -> Bind:
        b = self.obj(value, path, _BIND_KEYS, {"ip", "proto"})
        text = self.string(b["ip"], _join(path, "ip"))
        addr_text, slash, bits_text = text.partition("/")
        addr = self.address(addr_text, _join(path, "ip"))
        bits = addr.max_prefixlen
        if slash:
            if not bits_text.isdigit() or int(bits_text) > addr.max_prefixlen:
                raise self.fail(
                    _join(path, "ip"),
                    f"prefix length must be 0..{addr.max_prefixlen}, got {bits_text!r}",
                )
            bits = int(bits_text)
        network = ipaddress.ip_network((addr, bits), strict=False)
        proto = self.string(b["proto"], _join(path, "proto"))
        if proto not in PROTOCOLS:
            raise self.fail(_join(path, "proto"), f"must be tcp or udp, got {proto!r}")
        if "port" in b:
            if "port_start" in b or "port_end" in b:
                raise self.fail(path, "give either port or port_start/port_end, not both")
            start = end = self.port(b["port"], _join(path, "port"))
        else:
            for k in ("port_start", "port_end"):
                if k not in b:
                    raise self.fail(_join(path, k), "missing (or give port)")
            start = self.port(b["port_start"], _join(path, "port_start"))
            end = self.port(b["port_end"], _join(path, "port_end"))
            if start > end:
                raise self.fail(path, f"port_start {start} is above port_end {end}")
        host = addr if addr != network.network_address else None
        return Bind(network, proto, start, end, host)  # type: ignore[arg-type]

    def backend(self, value: Any, path: str) -> Backend:
        b = self.obj(value, path, _BACKEND_KEYS, {"ip", "state"})
        ip = self.address(b["ip"], _join(path, "ip"))
        state = self.string(b["state"], _join(path, "state"))
        if state not in STATES:
            raise self.fail(_join(path, "state"), f"must be one of {', '.join(STATES)}, got {state!r}")
        healthy = b.get("healthy", False)
        if not isinstance(healthy, bool):
            raise self.fail(_join(path, "healthy"), f"must be true or false, got {healthy!r}")
        checks = b.get("healthchecks", {})
        checks_path = _join(path, "healthchecks")
        if not isinstance(checks, dict):
            raise self.fail(checks_path, f"must be an object, got {_kind(checks)}")
        pairs = tuple((k, self.port(v, _join(checks_path, k))) for k, v in checks.items())
        return Backend(ip, state, healthy, pairs)  # type: ignore[arg-type]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def loads(text: str | bytes, source: str = "<json>") -> list[TableSpec]:
    """Specs from JSON text; ``source`` names it in error messages."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", where=f"{source}:{exc.lineno}:{exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}", where=source) from None
    return _Reader(source).tables(doc)


def load(path: str | Path) -> list[TableSpec]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", where=str(path)) from None
    return loads(data, str(path))


def _bind_doc(b: Bind) -> dict[str, Any]:
    addr = b.stored_address
    prefix = b.network.prefixlen
    ip = str(addr) if prefix == addr.max_prefixlen else f"{addr}/{prefix}"
    doc: dict[str, Any] = {"ip": ip, "proto": b.proto}
    if b.port_start == b.port_end:
        doc["port"] = b.port_start
    else:
        doc["port_start"], doc["port_end"] = b.port_start, b.port_end
    return doc


def _backend_doc(b: Backend) -> dict[str, Any]:
    doc: dict[str, Any] = {"ip": str(b.ip), "state": b.state, "healthy": b.healthy}
    if b.healthchecks:
        doc["healthchecks"] = dict(b.healthchecks)
    return doc


def dumps(specs: list[TableSpec] | tuple[TableSpec, ...]) -> str:
    """Upstream-shaped JSON text, keys in a fixed order, ending in a newline."""
    tables = []
    for s in specs:
        if len(s.hash_key) != 16 or len(s.seed) != 16:
            # Binary tables do not store the seed: refuse rather than write a file that
            # neither we nor upstream could read back.
            raise InputError("hash_key and seed must both be 16 bytes", where=f"table {s.name!r}")
        t: dict[str, Any] = {"name": s.name} if s.name else {}
        t["hash_key"] = s.hash_key.hex()
        t["seed"] = s.seed.hex()
        t["binds"] = [_bind_doc(b) for b in s.binds]
        t["backends"] = [_backend_doc(b) for b in s.backends]
        tables.append(t)
    return json.dumps({"tables": tables}, indent=2) + "\n"


def write(path: str | Path, specs: list[TableSpec] | tuple[TableSpec, ...]) -> bool:
    """Atomically replace ``path`` (mode 0644); False if it already held these bytes."""
    return write_atomic(path, dumps(specs))
