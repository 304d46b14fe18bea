"""Where the data planes pin their BPF objects and where the agents keep their state.

One convention for every data plane, so an operator (and ``glb-agent ... status``) finds a
host's pieces without knowing which program put them there::

    /sys/fs/bpf/glb/director/<ifname>/   XDP director: link, maps, meta
    /sys/fs/bpf/glb/proxy/<ifname>/      XDP proxy:    link, maps, meta
    /run/glb/director/                   director agent status, pid, live tables,
                                         BGP drain flag and feed status
    /run/glb/proxy/<ifname>.json         what ``proxy apply`` changed on the host

Health results are the one piece that must survive a reboot; they stay in
/var/lib/glb-agent (``HEALTH_FILE``). ``$GLB_STATE_DIR`` still overrides the director's
state directory (the BGP feed, ``drain`` and the agent must agree on it), and every CLI
keeps its ``--pin-dir``/``--state-dir`` flags.

Releases before this layout pinned the director at ``/sys/fs/bpf/glb/<ifname>`` and the
proxy at ``/sys/fs/bpf/glb-proxy/<ifname>``, and kept state in ``/run/glb`` and
``/run/glb-agent/proxy``. The ``LEGACY_*`` names below let the loaders adopt what such a
release left running (see glb_agent/dataplane/bpfcore/pinned.py) and
``migrate_director_state`` carry a drain flag across the upgrade.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Literal

from glb_agent.errors import InputError

DataPlaneKind = Literal["director", "proxy"]

BPFFS_ROOT = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS_ROOT / "glb"
STATE_ROOT = Path("/run/glb")
STATE_DIR_ENV = "GLB_STATE_DIR"
HEALTH_FILE = Path("/var/lib/glb-agent/health.json")

LEGACY_PIN_ROOTS: dict[str, Path] = {"director": PIN_ROOT, "proxy": BPFFS_ROOT / "glb-proxy"}
LEGACY_STATE_DIRS: dict[str, Path] = {"director": STATE_ROOT, "proxy": Path("/run/glb-agent/proxy")}
# Files the director side kept directly in /run/glb before it had its own directory.
LEGACY_DIRECTOR_FILES = ("bgp-drain.json", "bgp-feed.json", "director-status.json", "live-tables.json")

_IFNAME = re.compile(r"[A-Za-z0-9_.@:-]{1,15}")


def check_ifname(interface: str) -> str:
    """``interface`` if the kernel could name a device so (and it is safe in a path)."""
    if not _IFNAME.fullmatch(interface or "") or interface in (".", ".."):
        raise InputError(f"{interface!r} is not a valid interface name")
    return interface


def pin_dir(kind: DataPlaneKind, interface: str, root: Path | None = None) -> Path:
    """``<root>/<kind>/<interface>`` (root: ``PIN_ROOT``): the bpffs directory of one data
    plane on one interface."""
    return (root or PIN_ROOT) / kind / check_ifname(interface)


def legacy_pin_dir(kind: DataPlaneKind, interface: str) -> Path:
    """Where a release before this layout pinned ``kind`` on ``interface``."""
    return LEGACY_PIN_ROOTS[kind] / check_ifname(interface)


def director_state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``override``, else ``$GLB_STATE_DIR``, else /run/glb/director. The default directory
    first takes over what an older release kept in /run/glb (``migrate_director_state``)."""
    env = os.environ.get(STATE_DIR_ENV)
    directory = Path(override) if override else Path(env) if env else STATE_ROOT / "director"
    if directory == STATE_ROOT / "director":
        with contextlib.suppress(OSError):  # not root (a status query): read where things are
            migrate_director_state(directory)
    return directory


def proxy_state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """``override``, else /run/glb/proxy."""
    return Path(override) if override else STATE_ROOT / "proxy"


def migrate_director_state(directory: Path) -> list[str]:
    """Move the director files an older release kept in /run/glb into ``directory``.

    An upgrade in place must not forget that an operator drained this director (the flag
    lived in /run/glb/bgp-drain.json). Each file is moved and a symlink left at the old
    path, so a process of the old release still running during the upgrade (the BGP feed
    inside ExaBGP) keeps reading the truth: a drain or undrain done by the new release is
    what it sees. Returns the names moved.
    """
    legacy = LEGACY_STATE_DIRS["director"]
    if not legacy.is_dir():
        return []
    moved = []
    for name in LEGACY_DIRECTOR_FILES:
        old, new = legacy / name, directory / name
        if old.is_symlink() or not old.is_file() or new.exists():
            continue
        directory.mkdir(parents=True, exist_ok=True)
        os.replace(old, new)
        old.symlink_to(new)
        moved.append(name)
    return moved


def migrate_proxy_state(directory: Path, interface: str) -> bool:
    """Move ``<interface>.json`` from /run/glb-agent/proxy into ``directory`` (default only)."""
    old = LEGACY_STATE_DIRS["proxy"] / f"{check_ifname(interface)}.json"
    new = directory / old.name
    if directory != STATE_ROOT / "proxy" or not old.is_file() or new.exists():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    os.replace(old, new)
    return True
