"""The systemd units: systemd-analyze accepts them, and the ordering contract holds."""

from __future__ import annotations

import configparser
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from glb_agent.systemd import UNITS, UnitSettings, notify, render_units

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def settings(tmp_path: Path) -> UnitSettings:
    config = tmp_path / "glb.yml"
    config.write_text("fleet: {}\n")
    return UnitSettings("d1", config=config, agent=VENV_BIN / "glb-agent", exabgp=VENV_BIN / "exabgp",
                        exabgp_conf=tmp_path / "exabgp.conf")


def parse(text: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(text)
    return cp


def verify(paths: list[Path]) -> list[str]:
    """systemd-analyze verify; every problem it reports about *our* files (it only warns,
    exit 0, for e.g. an unknown Type=, so warnings count as failures here)."""
    res = subprocess.run(["systemd-analyze", "verify", *map(str, paths)], capture_output=True, text=True,
                         timeout=60)
    ours = [line for line in (res.stdout + res.stderr).splitlines()
            if any(p.name in line or str(p) in line for p in paths)]
    if res.returncode != 0 and not ours:
        ours = [f"exit {res.returncode}: {res.stderr.strip()}"]
    return ours


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


@needs_analyze
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    units = render_units(settings(tmp_path))
    paths = []
    for name, text in units.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    assert verify(paths) == []


@needs_analyze
def test_the_verify_check_catches_a_broken_unit(tmp_path: Path) -> None:
    text = render_units(settings(tmp_path))["glb-director.service"].replace("Type=notify", "Type=bogus")
    bad = tmp_path / "glb-director.service"
    bad.write_text(text)
    assert any("bogus" in line for line in verify([bad]))
    missing = tmp_path / "glb-proxy.service"
    missing.write_text(render_units(settings(tmp_path))["glb-proxy.service"]
                       .replace(str(VENV_BIN / "glb-agent"), "/nonexistent/glb-agent"))
    assert verify([missing])


def test_ordering_and_reload_contract(tmp_path: Path) -> None:
    units = {name: parse(text) for name, text in render_units(settings(tmp_path)).items()}
    assert set(units) == set(UNITS)
    director, exabgp, proxy = units["glb-director.service"], units["exabgp.service"], units["glb-proxy.service"]
    # the data plane is up (READY=1 after the first table load) before ExaBGP starts
    assert director["Service"]["Type"] == "notify"
    assert " run /" in director["Service"]["ExecStart"]  # CONFIG is positional
    assert director["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "glb-director.service" in exabgp["Unit"]["Requires"].split()
    assert "glb-director.service" in exabgp["Unit"]["After"].split()
    assert "exabgp.service" in director["Unit"]["Before"].split()
    # ExaBGP shuts down on SIGHUP; its reload signal is SIGUSR1
    assert exabgp["Service"]["ExecReload"] == "/bin/kill -USR1 $MAINPID"
    assert "bgp-feed" in exabgp["Unit"]["Description"]
    assert "proxy apply /" in proxy["Service"]["ExecStart"]
    assert proxy["Service"]["Type"] == "oneshot" and proxy["Service"]["RemainAfterExit"] == "yes"


def test_notify_speaks_the_sd_notify_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify() is False
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        srv.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert notify("READY=1") is True
        assert srv.recv(64) == b"READY=1"
