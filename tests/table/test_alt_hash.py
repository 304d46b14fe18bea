"""fleet.alt_hash_fields from the YAML to what the data plane and upstream tools are given."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from glb_agent.cli import main
from glb_agent.config import load_config
from glb_agent.dataplane.director_config import director_settings
from tests.support.fleet import write_fleet

MIGRATING = {"hash_fields": ["src_addr", "src_port"], "alt_hash_fields": ["src_addr"]}


@pytest.fixture
def migrating(tmp_path: Path) -> Path:
    return write_fleet(tmp_path / "glb.yml", 2, fleet=MIGRATING)


def test_settings_carry_both_field_sets(migrating: Path) -> None:
    settings = director_settings(load_config(migrating), "d1", resolve=False)
    assert settings.hash_fields == ("src_addr", "src_port")
    assert settings.alt_hash_fields == ("src_addr",)
    # a change of the migration is a change of the program (the agent reloads it)
    assert settings == director_settings(load_config(migrating), "d1", resolve=False)
    assert settings != dataclasses.replace(settings, alt_hash_fields=())


def test_the_program_is_built_to_hash_both_ways(migrating: Path) -> None:
    # The director program hashes with both field sets (bpf/director.c, GLB_ALT_HASH);
    # tests/dataplane/test_director_packets.py checks upstream's migration vector.
    settings = director_settings(load_config(migrating), "d1", resolve=False)
    opts = settings.build_options("02:00:00:00:00:02", 1500)
    opts.validate()
    flags = opts.cflags(None)
    assert {"-DGLB_ALT_HASH=1", "-DGLB_ALT_HASH_SRC_ADDR=1", "-DGLB_ALT_HASH_SRC_PORT=0"} <= set(flags)
    assert "-DGLB_ROW_WIDTH=4" in flags  # table_candidates' default K


def test_director_conf_has_upstreams_alt_hash_fields(migrating: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["render", str(migrating), "--out", str(out)]) == 0
    conf = json.loads((out / "directors" / "d1" / "director.conf").read_text())
    assert conf["hash_fields"] == {"src_addr": True, "dst_addr": False, "src_port": True, "dst_port": False}
    assert conf["alt_hash_fields"] == {"src_addr": True, "dst_addr": False, "src_port": False,
                                       "dst_port": False}
