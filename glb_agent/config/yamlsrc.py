"""Load YAML keeping source positions, so every config error can name ``file:line``.

ruamel.yaml's round-trip loader records the line of each mapping key and sequence item;
``Locator`` walks a validation error's path through those records to the nearest line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from glb_agent.errors import InputError

PathElem = str | int


def format_path(path: Sequence[PathElem]) -> str:
    """``("services", 0, "backends")`` -> ``services[0].backends``."""
    out = ""
    for elem in path:
        if isinstance(elem, int):
            out += f"[{elem}]"
        else:
            out += ("." if out else "") + str(elem)
    return out or "(top level)"


def _plain(node: Any) -> Any:
    """Round-trip containers to plain dict/list so validation sees ordinary Python data."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, (str, int)) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


@dataclass
class Locator:
    """Maps a path inside the document to a 1-based line in ``filename``."""

    filename: str
    root: Any

    def line_of(self, path: Sequence[PathElem]) -> int:
        node = self.root
        line = getattr(getattr(node, "lc", None), "line", 0) or 0
        for elem in path:
            if isinstance(node, CommentedMap) and elem in node:
                line = node.lc.key(elem)[0]
                node = node[elem]
            elif isinstance(node, CommentedSeq) and isinstance(elem, int) and 0 <= elem < len(node):
                line = node.lc.item(elem)[0]
                node = node[elem]
            else:
                break
        return line + 1

    def where(self, path: Sequence[PathElem]) -> str:
        return f"{self.filename}:{self.line_of(path)}"


def load_yaml(path: str | Path) -> tuple[Any, Locator]:
    """Parse ``path``; returns plain data and a locator. Syntax errors raise InputError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", where=str(path)) from None
    yaml = YAML(typ="rt")
    try:
        doc = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = str(exc.problem or exc.context or "unparsable")
        raise InputError(f"YAML syntax: {problem}", where=f"{path}:{line}") from None
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. bad tags)
        raise InputError(f"YAML syntax: {exc}", where=str(path)) from None
    if doc is None:
        raise InputError("file is empty", where=f"{path}:1")
    if not isinstance(doc, CommentedMap):
        raise InputError("top level must be a mapping", where=f"{path}:1")
    return _plain(doc), Locator(str(path), doc)
