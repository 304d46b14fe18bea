"""Every glb-agent command line in the shipped systemd units parses with the real CLI.

The units are templates and the CLI is code: a renamed flag would only show on a live host
(it did once: `proxy apply --config`), so parse each Exec* line here.
"""

from __future__ import annotations

import shlex

import pytest

from glb_agent.cli import build_parser
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
