"""Error types shared by every command, so the CLI can map them to documented exit codes."""

from __future__ import annotations


class GlbError(Exception):
    """Base class: the CLI prints the message and exits 1 (operation failed)."""

    exit_code = 1


class InputError(GlbError):
    """Bad input from the user (YAML, JSON, binary files, CLI arguments, packets).

    Exit code 2, and the caller guarantees nothing was applied, so the running state
    stays at its last good value.
    """

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
