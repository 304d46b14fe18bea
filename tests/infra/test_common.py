"""glb_common on directors and proxies: agent, glb.yml, sysctls, bpffs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.infra.conftest import AGENT, CONFIG


def test_glb_yml_is_the_controllers_file(host: Any, glb_host: str, controller_glb: Path) -> None:
    installed = host.file(CONFIG)
    assert installed.user == "root" and installed.mode == 0o640
    assert installed.content == controller_glb.read_bytes()


def test_agent_validates_the_installed_file(host: Any, glb_host: str) -> None:
    result = host.run(f"{AGENT} validate {CONFIG}")
    assert result.rc == 0, result.stderr


def test_agent_venv_imports_debian_bcc(host: Any, glb_host: str) -> None:
    result = host.run("/opt/glb/venv/bin/python -c 'import bcc'")
    assert result.rc == 0, result.stderr


def test_kernel_headers_for_bcc(host: Any, glb_host: str) -> None:
    assert host.file(f"/lib/modules/{host.check_output('uname -r')}/build").exists


def test_common_sysctls(host: Any, glb_host: str) -> None:
    assert host.sysctl("net.core.bpf_jit_enable") == 1
    assert host.sysctl("net.ipv4.conf.all.rp_filter") == 2


def test_bpffs_is_mounted(host: Any, glb_host: str) -> None:
    assert host.mount_point("/sys/fs/bpf").filesystem == "bpf"
