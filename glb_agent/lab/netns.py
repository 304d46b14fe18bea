"""Minimal network-namespace plumbing over iproute2, shared by the lab and the tests.

iproute2 rather than pyroute2 here because every step is also what an operator would type
to inspect the lab (`ip netns exec glb-lab-d1 ip -d link`), and the lab must be removable by
name alone after a crash.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence


def run(*args: str, ns: str | None = None, check: bool = True, timeout: float = 30,
        capture: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, inside namespace ``ns`` if given."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.run(cmd, check=check, timeout=timeout, text=True, capture_output=capture,
                          input=input)


def popen(*args: str, ns: str | None = None, **kw) -> subprocess.Popen:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    return subprocess.Popen(cmd, **kw)


def add(name: str) -> None:
    run("ip", "netns", "add", name)
    run("ip", "link", "set", "lo", "up", ns=name)


def names(prefix: str = "") -> list[str]:
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.split() and line.startswith(prefix)]


def kill_all(name: str, sig: int = signal.SIGKILL) -> None:
    """Kill every process in namespace ``name`` (so it can really be deleted)."""
    for pid in run("ip", "netns", "pids", name, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), sig)


def delete(name: str) -> None:
    kill_all(name)
    run("ip", "netns", "del", name, check=False)


def veth(a: str, a_if: str, b: str, b_if: str, a_addrs: Sequence[str] = (),
         b_addrs: Sequence[str] = (), a_mac: str | None = None, b_mac: str | None = None) -> None:
    """Join namespaces ``a`` and ``b`` with a veth pair named ``a_if`` / ``b_if``, both up."""
    tmp_a, tmp_b = f"va{secrets.token_hex(4)}", f"vb{secrets.token_hex(4)}"
    run("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    run("ip", "link", "set", tmp_a, "netns", a)
    run("ip", "link", "set", tmp_b, "netns", b)
    for ns, tmp, final, addrs, mac in ((a, tmp_a, a_if, a_addrs, a_mac), (b, tmp_b, b_if, b_addrs, b_mac)):
        run("ip", "link", "set", tmp, "name", final, ns=ns)
        if mac:
            run("ip", "link", "set", final, "address", mac, ns=ns)
        for addr in addrs:
            run("ip", "addr", "add", addr, "dev", final, *(["nodad"] if ":" in addr else []), ns=ns)
        run("ip", "link", "set", final, "up", ns=ns)


def mac_of(ns: str, dev: str) -> str:
    return run("cat", f"/sys/class/net/{dev}/address", ns=ns).stdout.strip()


def sysctl(ns: str, settings: dict[str, str | int]) -> None:
    """Set sysctls (dotted keys) inside ``ns``."""
    run("sysctl", "-qw", *(f"{k}={v}" for k, v in settings.items()), ns=ns)


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition") -> float:
    """Poll ``predicate`` until true; returns seconds waited, raises TimeoutError otherwise."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def inside(name: str) -> Iterator[None]:
    """Run the block with the calling *thread* in namespace ``name``; other threads, and the
    mount namespace (so /sys/fs/bpf), stay as they are."""
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(orig)
    finally:
        os.close(target)
        os.close(orig)
