"""Atomic, deterministic file output.

Readers (glb-director, ExaBGP, our own agent after a SIGHUP) may open a file at any moment,
so a file is either the old bytes or the new bytes, never a mix: write a temp file in the
same directory, fsync, rename over the target, fsync the directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o644


def write_atomic(path: str | Path, data: bytes | str, mode: int = FILE_MODE) -> bool:
    """Replace ``path`` with ``data``; returns False (and touches nothing) if unchanged."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == payload and (path.stat().st_mode & 0o777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
