"""Drain flag and feed status on disk, shared by ``glb-agent drain`` and the running feed.

The drain flag is a file so it survives agent and ExaBGP restarts: a director an operator
drained stays drained until ``undrain``, even across a reboot when the directory is
persistent (set ``GLB_STATE_DIR`` to /var/lib/glb for that; /run/glb/director forgets at boot).
The feed writes what it has announced (after ExaBGP acknowledged it) to a status file,
which is how ``drain --wait`` knows the withdrawal really left the process.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from glb_agent.util import paths
from glb_agent.util.files import write_atomic

STATE_DIR_ENV = paths.STATE_DIR_ENV
DEFAULT_STATE_DIR = paths.STATE_ROOT / "director"
DRAIN_FILE = "bgp-drain.json"
STATUS_FILE = "bgp-feed.json"


def state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``override``, else ``$GLB_STATE_DIR``, else /run/glb/director (glb_agent.util.paths)."""
    return paths.director_state_dir(override)


def write_json_atomic(path: Path, data: object) -> None:
    """Readers polling the file must never see half of it."""
    write_atomic(path, json.dumps(data, sort_keys=True) + "\n")


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class DrainState:
    """The drain flag of one director host."""

    directory: Path

    @property
    def path(self) -> Path:
        return self.directory / DRAIN_FILE

    def drain(self, reason: str = "", owner: str | None = None) -> str:
        """Set the flag; returns a fresh token the feed echoes once it has acted on it.

        ``owner`` marks a flag a program set for itself (the agent's data-plane switch), so
        that program can tell its own flag from an operator's and clear only its own."""
        token = secrets.token_hex(8)
        flag: dict[str, object] = {"token": token, "since": time.time(), "reason": reason}
        if owner is not None:
            flag["owner"] = owner
        write_json_atomic(self.path, flag)
        return token

    def undrain(self) -> bool:
        """Clear the flag; False if it was not set."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def current(self) -> dict | None:
        """The flag's content if drained, else None. An unreadable flag still means drained."""
        if not self.path.exists():
            return None
        return read_json(self.path) or {"token": "", "since": 0.0, "reason": "unreadable drain file"}


@dataclass(frozen=True)
class FeedStatus:
    """What the feed last confirmed to ExaBGP, as written by the feed."""

    directory: Path

    @property
    def path(self) -> Path:
        return self.directory / STATUS_FILE

    def write(self, status: dict) -> None:
        write_json_atomic(self.path, status)

    def read(self) -> dict | None:
        return read_json(self.path)

    def running(self) -> bool:
        """A feed wrote this status and its process lives (else nobody announces for us)."""
        current = self.read()
        return current is not None and pid_alive(current.get("pid"))

    def wait(self, done: Callable[[dict], bool], seconds: float, poll: float = 0.05) -> dict | None:
        """The first status ``done`` accepts within ``seconds``, else None."""
        deadline = time.monotonic() + seconds
        while True:
            current = self.read()
            if current is not None and done(current):
                return current
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll)


def withdrawal_confirmed(token: str) -> Callable[[dict], bool]:
    """Feed status test: the feed honoured drain ``token`` and ExaBGP holds no route of ours."""
    return lambda s: s.get("drain_token") == token and bool(s.get("confirmed")) and not s.get("announced")


def undrain_seen(status: dict) -> bool:
    """Feed status test: the feed saw the drain flag cleared."""
    return status.get("drain_token") is None


def pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
