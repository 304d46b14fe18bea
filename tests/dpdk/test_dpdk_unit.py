"""glb-director-dpdk.service: the DPDK process in a unit of its own.

``glb-agent units director`` adds the unit for a director with ``dataplane: dpdk`` (only
then); its ExecStart, ``glb-agent director exec``, becomes the real DPDK process (same pid,
written to the pid file) with the settings of glb.yml, building the table files from glb.yml
when the agent has not written any; an agent handle then adopts that process, as a restarted
agent does under systemd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from glb_agent.config import load_config
from glb_agent.config.hosts import this_director
from glb_agent.dataplane import dpdk as dpdk_module
from glb_agent.dataplane.director_config import director_settings
from glb_agent.dataplane.dpdk import DpdkDirector, dpdk_options
from glb_agent.systemd import DPDK_UNIT
from tests.dpdk.harness import BINARY, dpdk_unavailable, write_pcap
from tests.support.fleet import write_fleet

pytestmark = pytest.mark.dpdk
AGENT = str(Path(sys.executable).with_name("glb-agent"))


def _config(tmp_path: Path, dataplane: str) -> Path:
    pcap = tmp_path / "in.pcap"
    write_pcap(pcap, [bytes(Ether() / IP(src=f"198.51.100.{i}", dst="203.0.113.10") / TCP(dport=80))
                      for i in range(1, 9)])
    eal = ["--no-huge", "--no-shconf", "-m", "128", "--no-pci", "-l", "0", "--log-level=error",
           "--vdev", f"net_pcap0,rx_pcap={pcap},infinite_rx=1"]
    return write_fleet(tmp_path / "glb.yml", 1, director={"dataplane": dataplane, "dpdk": {"eal_args": eal}})


@pytest.mark.parametrize(("dataplane", "with_unit"), [("dpdk", True), ("xdp", False)])
def test_units_include_the_dpdk_unit_only_for_dpdk(tmp_path: Path, dataplane: str, with_unit: bool) -> None:
    cfg = _config(tmp_path, dataplane)
    out = subprocess.run([AGENT, "units", "director", str(cfg), "--name", "d1"], capture_output=True, text=True,
                         check=True).stdout
    units = json.loads(out)
    assert (DPDK_UNIT in units) is with_unit
    assert dpdk_module.DPDK_UNIT == DPDK_UNIT, "the agent starts the unit the renderer names"
    if with_unit:
        assert f"director exec {cfg.absolute()} --name d1" in units[DPDK_UNIT]


def test_director_exec_becomes_the_process_and_is_adopted(tmp_path: Path) -> None:
    why = dpdk_unavailable()
    if why:
        pytest.skip(why)
    cfg = _config(tmp_path, "dpdk")
    state = tmp_path / "state"
    env = {**os.environ, "GLB_STATE_DIR": str(state), "GLB_DPDK_BINARY": str(BINARY)}
    proc = subprocess.Popen([AGENT, "director", "exec", str(cfg), "--name", "d1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        loaded = load_config(cfg)
        handle = DpdkDirector(director_settings(loaded, "d1", resolve=False),
                              dpdk_options(this_director(loaded, "d1", strict=True), state, binary=BINARY))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not handle.ready()[0]:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        ok, why = handle.ready()
        assert ok, why
        assert handle.start() == "adopted" and handle.pid == proc.pid, "the agent process became the director"
        assert Path(os.readlink(f"/proc/{proc.pid}/exe")).name == BINARY.name
        assert handle.table.read_bytes()[:4] == b"GLBK", "tables built from glb.yml"
        assert handle.counters()["web"]["forwarded_packets"] > 0
        assert handle.stop() is True
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- the mixed lab's config (GLB_LAB_DPDK) -----------------------------------------------------

def test_lab_config_puts_the_named_directors_on_dpdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glb_agent.errors import InputError
    from glb_agent.lab import run as lab

    monkeypatch.setattr(lab, "RUN_DIR", tmp_path / "lab")
    inventory = Path(__file__).resolve().parents[2] / "inventories/lab/group_vars/all/glb.yml"
    monkeypatch.setenv(lab.DPDK_ENV, "d2")
    derived = load_config(lab.lab_config(inventory))
    planes = {d.name: d.dataplane for d in derived.config.directors}
    assert planes == {"d1": "xdp", "d2": "dpdk"}
    assert [s.name for s in derived.config.services] == [s.name for s in load_config(inventory).config.services]
    monkeypatch.setenv(lab.DPDK_ENV, "d1,d9")
    with pytest.raises(InputError, match="GLB_LAB_DPDK: no director named d9"):
        lab.lab_config(inventory)


def test_lab_config_keeps_lab_switch_choices_and_finds_relative_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's copy is derived again on every `lab apply`: `lab switch` choices stay, and
    files named relative to the source YAML (secret, BGP password) still resolve from the copy."""
    from glb_agent.errors import GlbError
    from glb_agent.lab import run as lab

    monkeypatch.setattr(lab, "RUN_DIR", tmp_path / "lab")
    monkeypatch.delenv(lab.DPDK_ENV, raising=False)
    with pytest.raises(GlbError, match="the lab is not up"):
        lab.apply()
    inventory = Path(__file__).resolve().parents[2] / "inventories/lab/group_vars/all/glb.yml"
    copy = lab.lab_config(inventory)
    (tmp_path / "lab" / "dataplanes.json").write_text('{"d1": "dpdk"}')
    derived = load_config(lab.lab_config(inventory))
    assert {d.name: d.dataplane for d in derived.config.directors} == {"d1": "dpdk", "d2": "xdp"}
    for name in [derived.config.fleet.secret_file, *(p.password_file for p in derived.config.bgp.peers)]:
        if name is not None:
            assert Path(name).is_absolute() and Path(name).exists(), name
    assert copy == tmp_path / "lab" / "glb.yml"


def test_lab_apply_defaults_to_the_lab_inventory_like_lab_up() -> None:
    from glb_agent.cli import parse_args
    from glb_agent.lab import run as lab

    assert Path(parse_args(["lab", "apply"]).config) == Path(lab.DEFAULT_CONFIG)
    assert parse_args(["lab", "apply", "--name", "d1", "--name", "d2"]).directors == ["d1", "d2"]
