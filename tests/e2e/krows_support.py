"""What the issue-15 lab tests share: a fleet file the agents read directly, edits applied
on every director, proxies' HTTP services killed and restarted, and the directors' views.

The lab's agents run the YAML they were started with; lab.up() runs a dual-stack copy of
a config that lacks IPv6 BGP sessions. These tests start from that copy (``fleet_text``),
so the file they edit is the very file every agent re-reads on ``apply``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from glb_agent.lab import run as lab

AGENT = str(Path(sys.executable).with_name("glb-agent"))
VIP = "203.0.113.10"
PROXIES = {"p1": "198.18.0.21", "p2": "198.18.0.22", "p3": "198.18.0.23", "p4": "198.18.0.24"}


def fleet_text() -> str:
    """The lab inventory's glb.yml as the dual-stack lab runs it (IPv6 sessions added),
    derived in a scratch directory so a running lab's files are left alone."""
    import tempfile

    saved = lab.RUN_DIR
    with tempfile.TemporaryDirectory(prefix="glb-fleet-") as scratch:
        lab.RUN_DIR = Path(scratch)
        try:
            return lab.lab_config(lab.DEFAULT_CONFIG).read_text()
        finally:
            lab.RUN_DIR = saved


def _edit(text: str, change) -> str:
    """Apply ``change(data)`` to the YAML document, keeping the rest as it was."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(text)
    change(data)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def set_fleet_keys(text: str, **keys: str) -> str:
    """Set ``fleet`` keys (e.g. table_semantics="upstream"); values are YAML scalars."""
    from ruamel.yaml import YAML

    def change(data) -> None:
        for key, value in keys.items():
            data["fleet"][key] = YAML(typ="safe").load(value)

    return _edit(text, change)


def _backends(data) -> list:
    return data["services"][0]["backends"]


def set_states(text: str, **states: str) -> str:
    """Backend states by proxy name (p1="draining"); "absent" removes the backend."""

    def change(data) -> None:
        for name, state in states.items():
            entries = _backends(data)
            (i,) = [i for i, b in enumerate(entries) if str(b["address"]) == PROXIES[name]]
            if state == "absent":
                del entries[i]
            else:
                entries[i]["state"] = state

    return _edit(text, change)


def apply(cfg: Path, directors: list[str], *extra: str) -> str:
    """The edited ``cfg`` live on ``directors`` (``glb-agent lab apply``: the lab runs its own
    copy of the YAML, derived again from the edit); their apply output."""
    return lab.apply(cfg, directors, *extra)


def kill_service(proxy: str) -> None:
    """Stop the proxy's HTTP service: the service is really gone (connections refused/reset,
    the HTTP health check fails), while the host and its decap stay up."""
    pid = int((lab.RUN_DIR / proxy / "httpd.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    lab.wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 15, f"{proxy} httpd to exit")


def _zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True


def status(director: str) -> dict:
    try:
        return json.loads((lab.RUN_DIR / director / "director-status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def backend(director: str, proxy: str) -> dict:
    for svc in status(director).get("services", []):
        for b in svc["backends"]:
            if b["address"] == PROXIES[proxy]:
                return b
    return {}


def wait_health(directors: list[str], proxy: str, healthy: bool, timeout: float = 20) -> None:
    lab.wait_for(lambda: all(backend(d, proxy).get("healthy") is healthy for d in directors), timeout,
                 f"{proxy} {'up' if healthy else 'DOWN'} on {', '.join(directors)}")


def wait_state(directors: list[str], proxy: str, state: str, timeout: float = 30) -> None:
    lab.wait_for(lambda: all(backend(d, proxy).get("state") == state for d in directors), timeout,
                 f"{proxy} {state} on {', '.join(directors)}")


def set_hash_fields(text: str, fields: str, alt: str | None = None) -> str:
    """Replace fleet.hash_fields (and set alt_hash_fields), e.g. "[src_addr, src_port]"."""
    keys = {"hash_fields": fields} | ({"alt_hash_fields": alt} if alt else {})
    return set_fleet_keys(text, **keys)


def with_p4(text: str) -> str:
    """A fourth proxy host (not yet a backend), as tests/e2e/test_consistency.py adds it."""
    return _edit(text, lambda data: data["proxies"].append(
        {"name": "p4", "address": "198.18.0.24", "interface": "eth0"}))


def add_p4(text: str, state: str) -> str:
    return _edit(text, lambda data: _backends(data).append({"address": "198.18.0.24", "state": state}))


class Keepers:
    """Batches of long-lived connections (glb_agent.lab.conns), one batch opened after each
    step, all kept to the end: connections arrive all the time, so each step's table places
    new ones, and a later step must still reach them."""

    def __init__(self, tmp: Path, sources: list[str], vip: str = VIP) -> None:
        self.tmp, self.sources, self.vip = tmp, sources, vip
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def open(self, count: int, label: str) -> None:
        from glb_agent.lab.topology import CLIENT_NS

        report = self.tmp / f"conns-{len(self.procs)}.json"
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{CLIENT_NS}", sys.executable, "-m", "glb_agent.lab.conns",
             "--vip", self.vip, "--sources", ",".join(self.sources), "--count", str(count),
             "--interval", "0.5", "--timeout", "9", "--duration", "1800", "--report", str(report)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append((proc, report))
        lab.wait_for(lambda: (r := _read(report)) is not None and r["alive"] + r["broken"] == count, 90,
                     f"{count} connections of batch {label!r} up")
        r = _read(report)
        assert r is not None and r["broken"] == 0, f"batch {label!r}: {r and r['broken']} failed to open"

    def totals(self) -> dict[str, int]:
        out = {"alive": 0, "broken": 0, "closed": 0}
        for _, report in self.procs:
            r = _read(report) or {}
            for key in out:
                out[key] += r.get(key, 0)
        return out

    def stop(self) -> list[dict]:
        broken = []
        for proc, report in self.procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            broken += [c for c in (_read(report) or {}).get("connections", []) if c["error"]]
        return broken


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def reapply_proxy(cfg: Path, name: str) -> None:
    """``proxy apply`` again on a proxy host whose services changed (a new backend gets the
    VIPs on its loopback): proxies first, before the directors send it traffic."""
    subprocess.run(["nsenter", f"--net=/run/netns/glb-lab-{name}", AGENT, "proxy", "apply", str(cfg),
                    "--name", name, "--state-dir", str(lab.RUN_DIR / name),
                    "--pin-dir", str(lab.PIN_ROOT / name)], check=True, capture_output=True, timeout=120)
