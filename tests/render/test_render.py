"""``glb-agent render``: complete, deterministic, atomic, and all-or-nothing."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from glb_agent.cli import main
from glb_agent.table import upstream_bin, upstream_json
from tests.config.test_broken_yaml import GOOD, replace

LAB = Path(__file__).resolve().parents[2] / "inventories/lab/group_vars/all/glb.yml"


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_writes_every_file_mode_0644_and_exabgp_conf_0600(tmp_path: Path) -> None:
    assert main(["render", str(LAB), "--out", str(tmp_path)]) == 0
    files = snapshot(tmp_path)
    assert set(files) == {
        "forwarding_table.bin", "forwarding_table.json",
        "directors/d1/director.conf", "directors/d1/exabgp.conf",
        "directors/d2/director.conf", "directors/d2/exabgp.conf",
    }
    for name in files:
        # exabgp.conf may hold TCP-MD5 passwords (the lab's does): owner only.
        want = 0o600 if name.endswith("exabgp.conf") else 0o644
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
    conf = json.loads(files["directors/d2/director.conf"])
    assert conf["outbound_src_ip"] == "198.18.0.12"
    assert conf["hash_fields"] == {"src_addr": True, "dst_addr": False, "src_port": False, "dst_port": False}
    assert "local-address 198.18.0.12;" in files["directors/d2/exabgp.conf"].decode()


def test_render_is_deterministic_and_skips_unchanged_files(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["render", str(LAB), "--out", str(a), "--agent", "/opt/glb/venv/bin/glb-agent",
                 "--config-path", "/etc/glb/glb.yml"]) == 0
    assert main(["render", str(LAB), "--out", str(b), "--agent", "/opt/glb/venv/bin/glb-agent",
                 "--config-path", "/etc/glb/glb.yml"]) == 0
    assert snapshot(a) == snapshot(b)
    capsys.readouterr()
    mtimes = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    assert main(["render", str(LAB), "--out", str(a), "--agent", "/opt/glb/venv/bin/glb-agent",
                 "--config-path", "/etc/glb/glb.yml"]) == 0
    assert "wrote" not in capsys.readouterr().out
    assert mtimes == {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}


def test_rendered_tables_round_trip_through_upstream_formats(tmp_path: Path) -> None:
    assert main(["render", str(LAB), "--out", str(tmp_path), "--name", "d1"]) == 0
    specs = upstream_json.load(tmp_path / "forwarding_table.json")
    binfile = upstream_bin.read(tmp_path / "forwarding_table.bin")
    assert len(binfile.tables) == len(specs) == 1
    assert binfile.tables[0].spec.hash_key == specs[0].hash_key
    assert (tmp_path / "director.conf").exists() and (tmp_path / "exabgp.conf").exists()


def test_bad_yaml_leaves_output_untouched(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    good = tmp_path / "glb.yml"
    good.write_text(GOOD)
    assert main(["render", str(good), "--out", str(out)]) == 0
    before = snapshot(out)
    good.write_text(replace("    ports: [80]\n", "    ports: [80]\n    bogus: 1\n"))
    assert main(["render", str(good), "--out", str(out)]) == 2
    assert "bogus" in capsys.readouterr().err
    assert snapshot(out) == before


def test_unknown_director_is_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    assert main(["render", str(LAB), "--out", str(tmp_path), "--director", "nope"]) == 2
    assert not any(tmp_path.iterdir())


def test_missing_out_is_a_usage_error_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["render", str(LAB)])
    assert exc.value.code == 2
