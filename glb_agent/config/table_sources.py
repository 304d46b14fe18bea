"""Open whatever an operator points the table commands at: .bin, upstream .json, or glb.yml.

``show`` and ``diff`` compare what a director runs (a .bin) with what a change would
produce (a .json or the YAML), so every command accepts all three and gets the same
thing back: specs with their rows.

It lives in the config layer, not in ``table``: reading glb.yml needs the config models,
and the table layer (formats, builder) sits below config and never imports it
(docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glb_agent.config import load_table_specs
from glb_agent.errors import InputError
from glb_agent.table import upstream_bin, upstream_json
from glb_agent.table.rendezvous import build_all
from glb_agent.table.spec import TableSpec

BIN_SUFFIXES = (".bin",)
JSON_SUFFIXES = (".json",)
YAML_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class LoadedTables:
    """Tables from one file; ``kind`` is "bin", "json" or "yaml" (bins lack seeds/names)."""

    path: str
    kind: str
    specs: tuple[TableSpec, ...]
    rows: tuple[np.ndarray, ...]


def kind_of(path: str | Path) -> str:
    """By suffix, else by content ("GLBD" magic or a JSON object), else an InputError."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in BIN_SUFFIXES:
        return "bin"
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in YAML_SUFFIXES:
        return "yaml"
    try:
        with p.open("rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", where=str(path)) from None
    if head.startswith(upstream_bin.MAGIC):
        return "bin"
    if head.lstrip().startswith(b"{"):
        return "json"
    raise InputError(
        "cannot tell the format: name it .bin (forwarding table), .json (upstream "
        "forwarding-table JSON) or .yml/.yaml (glb.yml)",
        where=str(path),
    )


def load_specs(path: str | Path) -> list[TableSpec]:
    """Specs from a source that has seeds (JSON or YAML), i.e. one that can be built."""
    kind = kind_of(path)
    if kind == "json":
        return upstream_json.load(path)
    if kind == "yaml":
        return load_table_specs(path)
    raise InputError(
        "a binary table cannot be rebuilt (it does not store the seeds); "
        "give the .json or .yml it was built from",
        where=str(path),
    )


def load_tables(path: str | Path) -> LoadedTables:
    """Specs and rows: read from a .bin, built from a .json or .yml."""
    kind = kind_of(path)
    if kind == "bin":
        f = upstream_bin.read(path)
        return LoadedTables(str(path), kind, tuple(t.spec for t in f.tables), tuple(t.rows for t in f.tables))
    specs = load_specs(path)
    return LoadedTables(str(path), kind, tuple(specs), tuple(build_all(specs)))
