"""Generate the YAML reference from the models, so the docs cannot drift from the code.

``glb-agent config-reference`` prints it; tests/config/test_docgen.py fails when
docs/config-reference.md is stale (regenerate with ``glb-agent config-reference > ...``).
"""

from __future__ import annotations

import inspect
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from glb_agent.config.model import GlbConfig


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "mapping"
    if args and (origin is typing.Union or str(origin) == "<class 'types.UnionType'>"):
        parts = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(parts))
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                "IPv4Address": "IPv4 address", "IPv6Address": "IPv6 address",
                "IPv4Network": "IPv4 prefix", "IPv6Network": "IPv6 prefix"}.get(
                    annotation.__name__, annotation.__name__)
    return str(annotation)


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for field in model.model_fields.values():
            for sub in _nested(field.annotation):
                visit(sub)

    visit(root)
    return seen


def _nested(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _nested(a)]


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
        return f"`{value.model_dump(exclude_none=True)}`" if isinstance(value, BaseModel) else f"`{value}`"
    if field.default is None or field.default is PydanticUndefined:
        return "unset"
    return f"`{field.default}`"


def reference_markdown() -> str:
    out = [
        "# glb.yml reference",
        "",
        "Generated from `glb_agent/config/model.py` by `glb-agent config-reference`; do not edit.",
        "Unknown keys are errors. Every error names `file:line: path: message` and exits 2.",
        "Warnings (`file:line: path: warning: message`: IPv6 prefixes some or all directors",
        "cannot announce, see [bgp.md](bgp.md#ipv6-vips)) do not fail `glb-agent validate`",
        "unless `--strict` is given.",
        "",
    ]
    for model in _models(GlbConfig):
        out += [f"## {model.__name__}", "", inspect.cleandoc(model.__doc__ or ""), ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | "
                       f"{field.description or ''} |")
        out.append("")
    return "\n".join(out)
