"""Is this director able to forward? The feed announces only while the answer is yes.

``dataplane`` (and ``auto``, its old name) is the real answer, from the director's data
plane (``glb_agent.dataplane.director.director_ready``): our program runs on the interface
and tables are loaded. ``xdp`` answers the weaker question "is some XDP program attached
(and, if the pin directory exists, does it hold anything)"; labs and tests that attach a
tiny stand-in program use it. Both ask ``bpfcore.xdp.attached``, the one place that knows
what runs on an interface, and have the same shape, so the feed never knows which it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from glb_agent.dataplane.bpfcore.xdp import attached
from glb_agent.errors import GlbError, InputError
from glb_agent.util import paths

Readiness = Callable[[], tuple[bool, str]]
MODES = ("auto", "dataplane", "xdp")


def xdp_ready(interface: str, pin_dir: Path | None = None) -> tuple[bool, str]:
    """Ready when an XDP program is attached and, if the pin directory exists, it is not empty."""
    try:
        att = attached(interface)
    except (GlbError, OSError) as exc:
        return False, str(exc)
    if att is None:
        return False, f"no XDP program attached to {interface}"
    pins = pin_dir if pin_dir is not None else paths.pin_dir("director", interface)
    if pins.is_dir() and not any(pins.iterdir()):
        return False, f"XDP program {att.prog_id} attached but {pins} holds no pinned maps"
    return True, f"XDP program {att.prog_id} attached to {interface}"


def resolve(mode: str, interface: str, pin_dir: Path | None = None) -> tuple[Readiness, str]:
    """The readiness function for ``mode`` and a name for logs."""
    if mode not in MODES:
        raise InputError(f"unknown readiness mode {mode!r} (expected one of {', '.join(MODES)})")
    if mode == "xdp":
        return partial(xdp_ready, interface, pin_dir), "xdp"
    # Imported here: the director loader pulls in numpy and the table code, which a feed
    # in ``xdp`` mode (restarted by ExaBGP at any time) should not wait for.
    from glb_agent.dataplane.director import director_ready

    return partial(director_ready, interface, pin_dir), "dataplane"


def first_ready(*checks: Readiness) -> Readiness:
    """Ready when any of ``checks`` is (its reason); otherwise the first one's reason.

    A director's feed asks both of its data planes, its configured one first: ExaBGP starts
    the feed once with the glb.yml of that moment, and a later change of ``dataplane`` makes
    the agent switch from one data plane to the other while the feed runs on (drained, see
    ``glb_agent.agent.director``). Either one forwarding with its tables loaded may be
    announced; both claim the interface's XDP hook, so they never forward side by side.
    """

    def run() -> tuple[bool, str]:
        results = []
        for check in checks:
            ok, why = check()
            if ok:
                return True, why
            results.append(why)
        return False, results[0] if results else "no readiness check"

    return run


def guarded(check: Readiness) -> Readiness:
    """A check that raised is a check that failed: never announce on an exception."""

    def run() -> tuple[bool, str]:
        try:
            ok, why = check()
        except Exception as exc:
            return False, f"readiness check raised {type(exc).__name__}: {exc}"
        return bool(ok), str(why)

    return run
