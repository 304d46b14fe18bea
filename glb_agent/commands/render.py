"""``glb-agent render``: every file a director needs, from the one YAML.

Everything is computed first and written only after all of it succeeded, so a bad YAML
or an unknown director leaves the output directory exactly as it was.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from glb_agent.commands import DEPRECATED, add_config_argument
from glb_agent.config import load_config
from glb_agent.config.hosts import this_director
from glb_agent.config.load import LoadedConfig
from glb_agent.config.tables import table_specs
from glb_agent.render.director_conf import render_director_conf
from glb_agent.table import upstream_bin, upstream_json
from glb_agent.table.rendezvous import build_all
from glb_agent.util.files import FILE_MODE, write_atomic


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="write director.conf, exabgp.conf and forwarding tables (JSON + binary)",
        description="Render every director's files from glb.yml. Files are written atomically "
        "(mode 0644) and only when their bytes change; output is deterministic.",
    )
    add_config_argument(p)
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--name", "--director", dest="name", metavar="NAME",
                   help="render only this director, flat into --out (default: every director, one "
                        f"subdirectory each); --director: {DEPRECATED}")
    p.add_argument("--config-path", help="path of glb.yml on the director, for ExaBGP's feed "
                   "(default: this file's absolute path)")
    p.add_argument("--agent", help="absolute path of glb-agent on the director "
                   "(default: the one running now)")
    p.set_defaults(func=run)


SECRET_FILES = {"exabgp.conf"}
SECRET_FILE_MODE = 0o600


def _agent_path(explicit: str | None) -> str:
    if explicit:
        return explicit
    found = shutil.which("glb-agent")
    return str(Path(found).resolve() if found else Path(sys.argv[0]).resolve())


def director_files(loaded: LoadedConfig, director: str, agent: str, config_path: str) -> dict[str, str]:
    """The per-director files, by name."""
    from glb_agent.bgp.render import render_exabgp_conf

    feed = [agent, "bgp-feed", config_path, "--name", director]
    return {
        "director.conf": render_director_conf(loaded, director),
        "exabgp.conf": render_exabgp_conf(loaded, director, feed),
    }


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.config)
    names = [this_director(loaded, args.name, strict=True).name] if args.name else \
        [d.name for d in loaded.config.directors]
    agent = _agent_path(args.agent)
    config_path = args.config_path or str(Path(args.config).resolve())
    specs = table_specs(loaded)
    outputs: dict[Path, bytes | str] = {
        args.out / "forwarding_table.json": upstream_json.dumps(specs),
        args.out / "forwarding_table.bin": upstream_bin.encode(specs, build_all(specs)),
    }
    for name in names:
        base = args.out if args.name else args.out / "directors" / name
        for fname, text in director_files(loaded, name, agent, config_path).items():
            outputs[base / fname] = text
    # exabgp.conf may carry TCP-MD5 passwords: only its owner (root) reads it.
    changed = [str(path) for path, data in sorted(outputs.items())
               if write_atomic(path, data, SECRET_FILE_MODE if path.name in SECRET_FILES else FILE_MODE)]
    for path in sorted(outputs):
        print(f"{'wrote ' if str(path) in changed else 'unchanged '}{path}")
    return 0
