"""Is this director able to forward? The feed announces only while the answer is yes.

The authoritative answer comes from the data plane
(``glb_agent.dataplane.director.director_ready``). Until that module is installed, and in
tests that attach their own tiny XDP program, the fallback answers the weaker question
"is an XDP program attached to the interface (and, if a pin directory exists, are maps
pinned there)". Both have the same shape so the feed never knows which one it runs.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path

from glb_agent.errors import InputError

Readiness = Callable[[], tuple[bool, str]]
PIN_ROOT = Path("/sys/fs/bpf/glb")
MODES = ("auto", "dataplane", "xdp")


class _Links:
    """One rtnetlink socket for the life of the feed: polling 5-10 times a second must
    stay cheap (opening a socket and dumping every link per poll cost ~2 ms)."""

    def __init__(self) -> None:
        self._ipr = None

    def xdp_program_id(self, interface: str) -> int | None:
        from pyroute2 import IPRoute

        try:
            index = socket.if_nametoindex(interface)
        except OSError:
            raise LookupError(f"interface {interface} does not exist") from None
        if self._ipr is None:
            self._ipr = IPRoute()
        try:
            link = self._ipr.get_links(index)[0]
        except Exception:
            self._ipr.close()  # a broken socket is replaced on the next poll
            self._ipr = None
            raise
        xdp = link.get_attr("IFLA_XDP")
        prog_id = xdp.get_attr("IFLA_XDP_PROG_ID") if xdp is not None else None
        return int(prog_id) if prog_id else None


_LINKS = _Links()


def xdp_program_id(interface: str) -> int | None:
    """The id of the XDP program attached to ``interface`` (in this netns), or None."""
    return _LINKS.xdp_program_id(interface)


def xdp_ready(interface: str, pin_dir: Path | None = None) -> tuple[bool, str]:
    """Ready when an XDP program is attached and, if the pin directory exists, it is not empty."""
    try:
        prog_id = xdp_program_id(interface)
    except (LookupError, OSError) as exc:
        return False, str(exc)
    if prog_id is None:
        return False, f"no XDP program attached to {interface}"
    pins = pin_dir if pin_dir is not None else PIN_ROOT / interface
    if pins.is_dir() and not any(pins.iterdir()):
        return False, f"XDP program {prog_id} attached but {pins} holds no pinned maps"
    return True, f"XDP program {prog_id} attached to {interface}"


def _dataplane_check() -> Callable[..., tuple[bool, str]] | None:
    try:
        module = importlib.import_module("glb_agent.dataplane.director")
    except ImportError:
        return None
    return getattr(module, "director_ready", None)


def resolve(mode: str, interface: str, pin_dir: Path | None = None) -> tuple[Readiness, str]:
    """The readiness function for ``mode`` and a name for logs.

    ``auto`` prefers the data plane's own check and falls back to the XDP check only when
    the data-plane module is not installed; ``dataplane`` refuses to fall back.
    """
    if mode not in MODES:
        raise InputError(f"unknown readiness mode {mode!r} (expected one of {', '.join(MODES)})")
    if mode in ("auto", "dataplane"):
        check = _dataplane_check()
        if check is not None:
            return partial(check, interface, pin_dir), "dataplane"
        if mode == "dataplane":
            raise InputError("readiness mode 'dataplane' needs glb_agent.dataplane.director.director_ready")
    return partial(xdp_ready, interface, pin_dir), "xdp"


def guarded(check: Readiness) -> Readiness:
    """A check that raised is a check that failed: never announce on an exception."""

    def run() -> tuple[bool, str]:
        try:
            ok, why = check()
        except Exception as exc:
            return False, f"readiness check raised {type(exc).__name__}: {exc}"
        return bool(ok), str(why)

    return run
