"""``glb-agent health check`` end to end: real YAML, real servers, exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from glb_agent.cli import main
from tests.health.conftest import DIRECTOR, PORT, PROXY, ROOT, start_decap
from tests.health.support import HttpBackend, http_backends

YAML = """\
fleet:
  name: t
  secret: 0123456789abcdef-secret
bgp:
  local_asn: 65100
  peers:
    - {{name: r1, address: 198.18.0.1, asn: 65000}}
directors:
  - {{name: d1, address: {director}, interface: eth0, gateway_mac: "02:00:00:00:00:01"}}
proxies:
{proxies}
services:
  - name: web
    vips: [203.0.113.10]
    ports: [80]
    healthcheck: {healthcheck}
    backends:
{backends}
"""


def write_config(tmp_path: Path, backends: list[HttpBackend], director: str = "198.18.0.11") -> Path:
    proxies = "\n".join(f"  - {{name: p{i}, address: {b.address}, interface: eth0}}" for i, b in enumerate(backends))
    items = "\n".join(f"      - address: {b.address}\n        healthcheck: {{http: {{port: {b.port}, path: /h}}}}"
                      for b in backends)
    hc = "{http: {port: 80}, interval: 0.1, timeout: 0.3, rise: 2, fall: 2}"
    path = tmp_path / "glb.yml"
    path.write_text(YAML.format(director=director, proxies=proxies, backends=items, healthcheck=hc))
    return path


def test_once_json_reports_each_backend_and_exits_1_if_any_is_down(tmp_path: Path, capsys) -> None:
    with http_backends(3, base="127.18.8.1") as backends:
        cfg = write_config(tmp_path, backends)
        assert main(["health", "check", "--config", str(cfg), "--once", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["ok"] and out["director"] == "d1" and len(out["backends"]) == 3
        assert all(b["checks"][0]["kind"] == "http" and b["checks"][0]["ok"] for b in out["backends"])
        backends[1].set_status(500)
        backends[2].stop()
        assert main(["health", "check", "--config", str(cfg), "--once", "--json"]) == 1
        out = json.loads(capsys.readouterr().out)
        assert [b["healthy"] for b in out["backends"]] == [True, False, False]
        assert "status 500, expected 200" in out["backends"][1]["checks"][0]["detail"]
        assert "refused" in out["backends"][2]["checks"][0]["detail"]


def test_default_mode_applies_rise_and_prints_a_table(tmp_path: Path, capsys) -> None:
    with http_backends(2, base="127.18.9.1") as backends:
        cfg = write_config(tmp_path, backends)
        assert main(["health", "check", "--config", str(cfg)]) == 0
        text = capsys.readouterr().out
        assert text.count("healthy") == 3 and "2/2 backends healthy" in text
        backends[0].stop()
        assert main(["health", "check", "--config", str(cfg), "--service", "web"]) == 1
        text = capsys.readouterr().out
        assert "UNHEALTHY" in text and "1/2 backends healthy" in text


def test_unknown_service_is_bad_input(tmp_path: Path) -> None:
    with http_backends(1, base="127.18.10.1") as backends:
        cfg = write_config(tmp_path, backends)
        assert main(["health", "check", "--config", str(cfg), "--once", "--service", "nope"]) == 2


@pytest.mark.netns
def test_gue_check_from_the_director_namespace(gue_lab, tmp_path: Path) -> None:
    """The installed CLI inside the director namespace finds its director by address."""
    lab, d, p = gue_lab
    start_decap(lab, p)
    cfg = tmp_path / "glb.yml"
    cfg.write_text(YAML.format(
        director=DIRECTOR, proxies=f"  - {{name: p1, address: {PROXY}, interface: eth0}}",
        backends=f"      - address: {PROXY}", healthcheck=f"{{gue: {{port: {PORT}}}}}"))
    cmd = ["ip", "netns", "exec", d, sys.executable, "-m", "glb_agent.cli", "health", "check",
           "--config", str(cfg), "--once", "--json"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["backends"][0]["checks"][0]["kind"] == "gue" and out["backends"][0]["healthy"]
