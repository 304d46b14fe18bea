"""``table build|show|diff`` through their own argparse, as the real CLI registers them."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from glb_agent.commands import table as table_cmd
from glb_agent.errors import InputError
from glb_agent.table import upstream_bin, upstream_json

from .factories import compat_dir

LAB_YAML = Path(__file__).resolve().parents[2] / "inventories" / "lab" / "group_vars" / "all" / "glb.yml"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="glb-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    table_cmd.register(sub)
    args = parser.parse_args(["table", *argv])
    return args.func(args)


def test_build_from_upstream_json_matches_upstream_bin(tmp_path: Path, capsys) -> None:
    src = compat_dir() / "mixed_states.json"
    out = tmp_path / "forwarding_table.bin"
    assert run("build", str(src), str(out)) == 0
    assert out.read_bytes() == src.with_suffix(".bin").read_bytes()
    assert "2 tables, 9 backends" in capsys.readouterr().out
    assert run("build", str(src), str(out)) == 0
    assert "(unchanged)" in capsys.readouterr().out


def test_build_can_write_upstream_json(tmp_path: Path) -> None:
    src = compat_dir() / "fleet32.json"
    out = tmp_path / "ft.json"
    assert run("build", str(src), str(out)) == 0
    assert upstream_json.load(out) == upstream_json.load(src)


def test_build_from_glb_yml(tmp_path: Path) -> None:
    if not LAB_YAML.is_file():
        pytest.skip(f"no lab config at {LAB_YAML}")
    out = tmp_path / "ft.bin"
    assert run("build", str(LAB_YAML), str(out)) == 0
    f = upstream_bin.read(out)
    assert f.tables and all(t.spec.backends for t in f.tables)


def test_build_rejects_a_bin_source_and_a_missing_directory(tmp_path: Path) -> None:
    src = compat_dir() / "seed_example.bin"
    with pytest.raises(InputError, match="does not store the seeds"):
        run("build", str(src), str(tmp_path / "x.bin"))
    with pytest.raises(InputError, match="output directory does not exist"):
        run("build", str(compat_dir() / "seed_example.json"), str(tmp_path / "no" / "x.bin"))


def test_show_text_lists_backends_and_shares(capsys) -> None:
    assert run("show", str(compat_dir() / "mixed_states.bin"), "--rows", "2") == 0
    out = capsys.readouterr().out
    assert "2 tables" in out
    assert "192.168.50.14  inactive" in out
    assert "bind udp fdb4:98ce:52d4::42/64 port 1000-2000" in out
    assert "row     1:" in out and "row     2:" not in out


def test_show_json_shares_add_up(capsys) -> None:
    assert run("show", str(compat_dir() / "fleet32.json"), "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    backends = doc["tables"][0]["backends"]
    assert doc["format"] == "json" and len(backends) == 32
    assert sum(b["primary_rows"] for b in backends) == 65536
    assert abs(sum(b["primary_share"] for b in backends) - 1) < 1e-4
    assert "rows" not in doc["tables"][0]


def test_diff_bin_against_modified_json(tmp_path: Path, capsys) -> None:
    src = compat_dir() / "fleet32.json"
    doc = json.loads(src.read_text())
    doc["tables"][0]["backends"][0]["state"] = "draining"
    new = tmp_path / "new.json"
    new.write_text(json.dumps(doc))
    assert run("diff", str(src.with_suffix(".bin")), str(new), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    first = result["tables"][0]["backends"][0]
    assert first["new"]["state"] == "draining" and first["primary"]["after"] == 0
    assert result["tables"][0]["primary_changed"] == first["primary"]["before"]


def test_diff_of_a_file_with_itself_says_no_changes(tmp_path: Path, capsys) -> None:
    copy = tmp_path / "copy"  # no suffix: the format is sniffed from the content
    shutil.copy(compat_dir() / "seed_example.bin", copy)
    assert run("diff", str(compat_dir() / "seed_example.json"), str(copy)) == 0
    assert "no changes" in capsys.readouterr().out


def test_unknown_format_is_an_input_error(tmp_path: Path) -> None:
    junk = tmp_path / "table.txt"
    junk.write_text("hello")
    with pytest.raises(InputError, match="cannot tell the format"):
        run("show", str(junk))


def test_negative_row_count_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        run("show", "x.bin", "--rows", "-1")
    assert exc.value.code == 2
