"""Code-base rules a reviewer would otherwise have to remember: ruff-clean, and strict layers.

The layer contract (docs/architecture.md draws it): a module may import only from layers
below its own, or from its own component (package). Components that share a layer are
independent of each other (``render`` never imports ``dataplane``), so each layer can be
understood, tested and replaced without the ones beside and above it. Every import counts:
module level, inside functions, under ``if TYPE_CHECKING``, relative, and
``importlib.import_module("glb_agent....")`` with a literal name, because a function-level
import is exactly how a cycle gets hidden.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "glb_agent"

# Lowest first. The root package itself (``glb_agent/__init__.py``: the version) is a utility.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("glb_agent", "glb_agent.util", "glb_agent.errors", "glb_agent.logs"),
    ("glb_agent.table",),
    ("glb_agent.config",),
    ("glb_agent.render", "glb_agent.dataplane", "glb_agent.systemd"),
    ("glb_agent.health", "glb_agent.bgp", "glb_agent.proxy"),
    ("glb_agent.metrics",),
    ("glb_agent.agent", "glb_agent.lab"),
    ("glb_agent.commands", "glb_agent.cli"),
)
# The utility layer is one component: errors, logs and util may use each other.
UTILITY = LAYERS[0]


def component(module: str) -> str | None:
    """The component ``module`` belongs to: the longest listed prefix (the root only exactly)."""
    best = None
    for layer in LAYERS:
        for c in layer:
            if (module == c or (c != PACKAGE and module.startswith(c + "."))) and (
                    best is None or len(c) > len(best)):
                best = c
    return best


def layer_of(comp: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if comp in layer)


def module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool, src: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every glb_agent import anywhere in ``tree``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                # ``from glb_agent import logs`` imports the module glb_agent.logs.
                sub = f"{base}.{alias.name}"
                sub_path = src.joinpath(*sub.split("."))
                is_module = sub_path.with_suffix(".py").exists() or (sub_path / "__init__.py").exists()
                yield node.lineno, sub if is_module else base
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def layering_violations(src: Path) -> list[str]:
    """Every import in the package under ``src`` that breaks the layer contract."""
    problems = []
    for path in sorted((src / PACKAGE).rglob("*.py")):
        module = module_name(path, src)
        mine = component(module)
        rel = path.relative_to(src)
        if mine is None:
            problems.append(f"{rel}: module {module} belongs to no layer; add it to LAYERS in "
                            "tests/test_style.py and to docs/architecture.md")
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target in imported_modules(tree, module, path.name == "__init__.py", src):
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            theirs = component(target)
            if theirs is None or theirs == mine or (mine in UTILITY and theirs in UTILITY):
                continue
            if layer_of(theirs) < layer_of(mine):
                continue
            how = "a higher" if layer_of(theirs) > layer_of(mine) else "an independent same-level"
            problems.append(f"{rel}:{line}: {mine} imports {target}, {how} layer "
                            f"({theirs}); see docs/architecture.md")
    return problems


def test_ruff_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "glb_agent", "tests", "bench"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_layers_are_respected() -> None:
    assert layering_violations(ROOT) == []


def test_layer_check_catches_upward_and_sideways_imports(tmp_path: Path) -> None:
    """A copy of the real package with three planted violations: each is reported, by line."""
    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.h", "*.j2"))
    assert layering_violations(tmp_path) == []
    spec = tmp_path / PACKAGE / "table" / "spec.py"
    spec.write_text(spec.read_text() + "\n\ndef _late():\n    from glb_agent.config import load_config\n"
                    "    return load_config\n")
    files = tmp_path / PACKAGE / "util" / "files.py"
    files.write_text(files.read_text() + "\nfrom ..commands import render as _r  # noqa\n")
    templates = tmp_path / PACKAGE / "render" / "templates.py"
    templates.write_text(templates.read_text() + "\nimport importlib\n"
                         "_dp = importlib.import_module('glb_agent.dataplane.director')\n")
    found = layering_violations(tmp_path)
    assert len(found) == 3, found
    assert any(p.startswith("glb_agent/table/spec.py:") and "imports glb_agent.config" in p for p in found)
    assert any(p.startswith("glb_agent/util/files.py:") and "glb_agent.commands.render" in p for p in found)
    assert any(p.startswith("glb_agent/render/templates.py:") and "same-level" in p for p in found)


def test_every_layer_is_in_the_architecture_doc() -> None:
    """docs/architecture.md's table lists the same components in the same order."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    rows = [line for line in doc.splitlines() if line.split("|")[1:2] and line.split("|")[1].strip().isdigit()]
    listed = [tuple(sorted(part.strip("` ") for part in row.split("|")[2].split(","))) for row in rows]
    assert listed == [tuple(sorted(layer)) for layer in reversed(LAYERS)], listed
