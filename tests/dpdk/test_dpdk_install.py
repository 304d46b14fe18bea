"""Where the agent finds the DPDK director: one lookup (``default_binary``), and the place the
glb_director role and the appliance image install it is the place the lookup ends at.

The installed copy itself is exercised in the booted image (tests/image/test_image_boot.py).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from glb_agent.config import load_config
from glb_agent.config.hosts import this_director
from glb_agent.dataplane import dpdk as dpdk_module
from glb_agent.dataplane.director import DirectorSettings
from glb_agent.dataplane.dpdk import (
    INSTALLED_BINARY,
    INSTALLED_DIR,
    STEER_OBJECT,
    DpdkDirector,
    DpdkOptions,
    default_binary,
    dpdk_options,
)
from glb_agent.errors import GlbError

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "glb_director"


def test_role_installs_where_the_agent_looks() -> None:
    fixed = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    assert Path(fixed["glb_director_dpdk_dir"]) == INSTALLED_DIR
    tasks = (ROLE / "tasks/dpdk_install.yml").read_text()
    # both files the agent uses, from the controller's build, into that directory
    assert "name: glb-director-dpdk," in tasks and f"name: {STEER_OBJECT}," in tasks
    assert 'dest: "{{ glb_director_dpdk_dir }}/{{ item.name }}"' in tasks


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLB_DPDK_BINARY", str(tmp_path / "elsewhere"))
    assert default_binary() == tmp_path / "elsewhere"
    monkeypatch.delenv("GLB_DPDK_BINARY")
    built = tmp_path / "build" / "glb-director-dpdk"
    monkeypatch.setattr(dpdk_module, "REPO_BINARY", built)
    assert default_binary() == INSTALLED_BINARY  # an agent installed from a wheel: no checkout build
    built.parent.mkdir()
    built.write_bytes(b"")
    assert default_binary() == built  # run from a source tree: the tree's build


def test_steering_object_next_to_the_installed_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLB_DPDK_BINARY", raising=False)
    monkeypatch.setattr(dpdk_module, "REPO_BINARY", tmp_path / "not-built")
    cfg = tmp_path / "glb.yml"
    cfg.write_text((ROOT / "inventories/lab/group_vars/all/glb.yml").read_text())
    for f in (ROOT / "inventories/lab/group_vars/all").iterdir():
        if f.name != "glb.yml":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    d = this_director(load_config(cfg), "d1", strict=True)
    opts = dpdk_options(d, tmp_path / "state")
    assert opts.binary == INSTALLED_BINARY
    assert f"xdp_prog={INSTALLED_DIR / STEER_OBJECT}" in " ".join(opts.eal_args)


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    settings = DirectorSettings("d0", ipaddress.IPv4Address("198.18.0.11"), "02:00:00:00:00:01", ("src_addr",), ())
    director = DpdkDirector(settings, DpdkOptions(("--no-huge",), tmp_path, binary=tmp_path / "nope"))
    with pytest.raises(GlbError, match=r"nope: no DPDK director binary there .*make dpdk.*glb_director role"):
        director.command()
