"""Throw-away network namespaces and veth links for tests that need real traffic.

Every name carries a per-run random tag, so parallel test runs (and helpers working
side by side) never collide, and ``Lab.close`` removes everything even after a failure.
Only the address ranges PLATFORM.md allows are used by the callers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field


def sh(*args: str, ns: str | None = None, check: bool = True, timeout: float = 30,
       capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, inside namespace ``ns`` if given."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, check=check, timeout=timeout, text=True,
                          capture_output=capture)


def popen(*args: str, ns: str | None = None, **kw) -> subprocess.Popen:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.Popen(cmd, **kw)


def can_run() -> str | None:
    """Why namespace tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "no iproute2 netns support"
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
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)
        return name

    def link(self, a: str, a_if: str, b: str, b_if: str,
             a_addrs: Sequence[str] = (), b_addrs: Sequence[str] = (),
             a_mac: str | None = None, b_mac: str | None = None) -> None:
        """Join namespaces ``a`` and ``b`` with a veth pair named ``a_if``/``b_if``."""
        tmp_a, tmp_b = f"va{secrets.token_hex(4)}", f"vb{secrets.token_hex(4)}"
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        sh("ip", "link", "set", tmp_a, "netns", a)
        sh("ip", "link", "set", tmp_b, "netns", b)
        for ns_name, tmp, final, addrs, mac in ((a, tmp_a, a_if, a_addrs, a_mac),
                                                (b, tmp_b, b_if, b_addrs, b_mac)):
            sh("ip", "link", "set", tmp, "name", final, ns=ns_name)
            if mac:
                sh("ip", "link", "set", final, "address", mac, ns=ns_name)
            for addr in addrs:
                extra = ["nodad"] if ":" in addr else []
                sh("ip", "addr", "add", addr, "dev", final, *extra, ns=ns_name)
            sh("ip", "link", "set", final, "up", ns=ns_name)

    def start(self, *args: str, ns: str, **kw) -> subprocess.Popen:
        """Start a background process in ``ns``; it is killed on close."""
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = popen(*args, ns=ns, **kw)
        self.procs.append(proc)
        return proc

    def mac(self, ns_name: str, dev: str) -> str:
        return sh("cat", f"/sys/class/net/{dev}/address", ns=ns_name).stdout.strip()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        for name in reversed(self.namespaces):
            # Killing leftovers first lets the namespace (and its veths) really go away.
            pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
