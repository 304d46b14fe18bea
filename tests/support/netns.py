"""Throw-away network namespaces and veth links for tests that need real traffic.

Every name carries a per-run random tag, so parallel test runs never collide, and
``Lab.close`` removes everything even after a failure. Only the address ranges
PLATFORM.md allows are used by the callers. Built on the lab's own plumbing
(glb_agent.lab.netns), so tests and the lab exercise the same code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from glb_agent.lab import netns

sh = netns.run
popen = netns.popen
wait_for = netns.wait_for  # (predicate, timeout, interval=0.1, what=...): seconds, or TimeoutError


def can_run() -> str | None:
    """Why namespace tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "no iproute2 netns support"
    return None


def bpf_unavailable() -> str | None:
    """Why tests loading real eBPF programs (bcc, pinned maps) cannot run here, or None."""
    why = can_run()
    if why:
        return why
    if importlib.util.find_spec("bcc") is None:
        return "bcc (python3-bpfcc) not importable"
    if not os.path.ismount("/sys/fs/bpf"):
        return "bpffs not mounted at /sys/fs/bpf"
    return None


@dataclass
class Lab:
    """A set of namespaces joined by veth pairs; use as a context manager."""

    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def ns(self, short: str) -> str:
        """Create namespace ``glbt-<short>-<tag>`` with loopback up; returns its name."""
        name = f"glbt-{short}-{self.tag}"
        netns.add(name)
        self.namespaces.append(name)
        return name

    def link(self, a: str, a_if: str, b: str, b_if: str,
             a_addrs: Sequence[str] = (), b_addrs: Sequence[str] = (),
             a_mac: str | None = None, b_mac: str | None = None) -> None:
        """Join namespaces ``a`` and ``b`` with a veth pair named ``a_if``/``b_if``."""
        netns.veth(a, a_if, b, b_if, a_addrs, b_addrs, a_mac, b_mac)

    def start(self, *args: str, ns: str, **kw) -> subprocess.Popen:
        """Start a background process in ``ns``; it is killed on close."""
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = netns.popen(*args, ns=ns, **kw)
        self.procs.append(proc)
        return proc

    def mac(self, ns_name: str, dev: str) -> str:
        return netns.mac_of(ns_name, dev)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        for name in reversed(self.namespaces):
            netns.delete(name)
        self.namespaces.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
