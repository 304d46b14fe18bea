"""The one declarative YAML: models, loading with file:line errors, and derived views."""

from __future__ import annotations

from pathlib import Path

from glb_agent.config.load import ConfigError, LoadedConfig, load_config
from glb_agent.config.tables import table_specs
from glb_agent.table.spec import TableSpec

__all__ = ["ConfigError", "LoadedConfig", "load_config", "load_table_specs"]


def load_table_specs(path: str | Path) -> list[TableSpec]:
    """Forwarding-table specs for every service in the YAML at ``path`` (all healthy)."""
    return table_specs(load_config(path))
