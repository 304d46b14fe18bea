"""Every glb-agent command line in the shipped systemd units parses with the real CLI.

The units are templates and the CLI is code: a renamed flag would only show on a live host
(it did once: `proxy apply --config`), so parse each Exec* line here.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from glb_agent.cli import build_parser, main, parse_args
from glb_agent.systemd import UNITS, UnitSettings, render_units

AGENT = "/opt/glb/venv/bin/glb-agent"


def agent_command_lines() -> list[tuple[str, list[str]]]:
    lines = []
    for unit, text in render_units(UnitSettings(name="d1")).items():
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.startswith("Exec"):
                argv = shlex.split(value.lstrip("-@+!"))
                if argv and argv[0] == AGENT:
                    lines.append((f"{unit}:{key}", argv[1:]))
    return lines


def test_units_run_the_agent() -> None:
    commands = {label.split(":")[0] for label, _ in agent_command_lines()}
    assert {"glb-director.service", "glb-proxy.service"} <= commands <= set(UNITS)


@pytest.mark.parametrize(("label", "argv"), agent_command_lines(), ids=lambda x: x if isinstance(x, str) else "")
def test_unit_command_line_parses(label: str, argv: list[str]) -> None:
    args = build_parser().parse_args(argv)  # exits 2 (SystemExit) on an unknown flag
    assert callable(args.func), label


# --- one CLI: CONFIG or --config everywhere, --name the only host flag, shared verbs --------

LAB = Path(__file__).resolve().parents[1] / "inventories/lab/group_vars/all/glb.yml"


def leaf_parsers(parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ()
                 ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command (path of subcommand names, its parser), aliases included."""
    parser = parser or build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from leaf_parsers(child, (*path, name))


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


def test_every_command_that_reads_the_config_takes_config_or_dash_dash_config() -> None:
    readers = []
    for path, p in leaf_parsers():
        opts = options(p)
        positional = [a.dest for a in p._actions if not a.option_strings]
        if "--config" in opts or "config" in positional:
            readers.append(" ".join(path))
            assert "config" in positional and opts["--config"].dest == "config_option", path
    # The ones the issue found taking only --config are among them now.
    for cmd in ("run", "apply", "bgp-feed", "health check", "lab up", "validate", "render",
                "director apply", "director start", "proxy apply", "units"):
        assert cmd in readers, cmd


@pytest.mark.parametrize("argv", [["run"], ["apply"], ["bgp-feed"], ["health", "check"], ["bgp", "render"],
                                  ["director", "apply"], ["proxy", "status"], ["units", "proxy"]])
def test_both_config_spellings_reach_the_same_file_and_misuse_is_exit_2(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args([*argv, str(LAB)]).config == str(LAB)
    assert parse_args([*argv, "--config", str(LAB)]).config == str(LAB)
    assert parse_args([*argv, str(LAB), "--config", str(LAB)]).config == str(LAB)
    for bad, why in (([str(LAB), "--config", str(tmp_path / "other.yml")], "give the config once"),
                     ([], "the config file is required")):
        with pytest.raises(SystemExit) as exc:
            parse_args([*argv, *bad])
        assert exc.value.code == 2
        assert why in capsys.readouterr().err


def test_lab_defaults_to_the_lab_inventory() -> None:
    assert parse_args(["lab", "status"]).config == LAB
    assert parse_args(["lab", "status", "--config", "x.yml"]).config == "x.yml"


def test_name_is_the_only_host_flag_and_director_is_a_documented_alias() -> None:
    for path, p in leaf_parsers():
        opts = options(p)
        if "--director" in opts:
            action = opts["--director"]
            assert action is opts["--name"] and action.dest == "name", path
            assert "old spelling" in (action.help or ""), path
    for argv in (["render", str(LAB), "--out", "x"], ["bgp-feed", str(LAB)], ["bgp", "render", str(LAB)],
                 ["health", "check", str(LAB)]):
        assert build_parser().parse_args([*argv, "--director", "d2"]).name == "d2"
        assert build_parser().parse_args([*argv, "--name", "d2"]).name == "d2"


def test_director_and_proxy_share_one_verb_set_and_start_is_apply() -> None:
    verbs = {}
    for path, _ in leaf_parsers():
        if path[0] in ("director", "proxy"):
            verbs.setdefault(path[0], set()).add(path[1])
    assert verbs["proxy"] == {"apply", "stop", "status"}
    # plus `exec`: glb-director-dpdk.service's ExecStart (dataplane: dpdk only)
    assert verbs["director"] == {"apply", "stop", "status", "start", "exec"}
    start = build_parser().parse_args(["director", "start", str(LAB)])
    apply = build_parser().parse_args(["director", "apply", str(LAB)])
    assert start.func is apply.func and start.xdp_mode == apply.xdp_mode == "auto"
    director = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
                    ).choices["director"]
    assert "alias start: old spelling" in director.format_help()
    leaves = dict(leaf_parsers())
    for verb in ("apply", "stop", "status"):
        for role in ("director", "proxy"):
            opts = options(leaves[(role, verb)])
            assert {"--name", "--pin-dir", "--json", "--config"} <= set(opts), (role, verb)


def test_shared_flags_are_spelled_and_typed_alike() -> None:
    for path, p in leaf_parsers():
        opts = options(p)
        if "--xdp-mode" in opts:
            assert opts["--xdp-mode"].choices == ("auto", "native", "generic"), path
        for flag in ("--pin-dir", "--state-dir"):
            if flag in opts:
                assert opts[flag].type is Path and opts[flag].default is None, (path, flag)


def test_units_command_renders_the_roles_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["units", "director", str(LAB), "--name", "d1", "--agent", AGENT]) == 0
    director = json.loads(capsys.readouterr().out)
    assert sorted(director) == ["exabgp.service", "glb-director.service"]
    assert f"ExecStart={AGENT} run {LAB} --name d1\n" in director["glb-director.service"]
    assert main(["units", "proxy", "--config", str(LAB), "--name", "p2", "--agent", AGENT]) == 0
    proxy = json.loads(capsys.readouterr().out)
    assert list(proxy) == ["glb-proxy.service"]
    assert f"ExecStart={AGENT} proxy apply {LAB} --name p2\n" in proxy["glb-proxy.service"]
    # The host must exist in the config, in the role asked for.
    assert main(["units", "proxy", str(LAB), "--name", "d1"]) == 2
    assert "no proxy named 'd1'" in capsys.readouterr().err
    # --out: written atomically, and a second run changes nothing.
    out = tmp_path / "units"
    assert main(["units", "proxy", str(LAB), "--name", "p2", "--agent", AGENT, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("wrote ")
    assert (out / "glb-proxy.service").read_text() == proxy["glb-proxy.service"]
    assert main(["units", "proxy", str(LAB), "--name", "p2", "--agent", AGENT, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("unchanged ")


def test_roles_render_units_through_the_cli_not_inline_python() -> None:
    roles = Path(__file__).resolve().parents[1] / "roles"
    for task in roles.rglob("*.yml"):
        text = task.read_text()
        assert "- -c\n" not in text and "python -c" not in text, task
        assert "glb_agent.systemd" not in text, task
