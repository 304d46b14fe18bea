"""Read and validate ``glb.yml``: every problem reported as ``file:line: path: message``."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from glb_agent.config import checks
from glb_agent.config.model import GlbConfig
from glb_agent.config.yamlsrc import Locator, format_path, load_yaml
from glb_agent.errors import InputError


class ConfigError(InputError):
    """One or more problems in the YAML; ``problems`` holds one formatted line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from (for secret_file and messages)."""

    config: GlbConfig
    source: Path
    # ``file:line: path: warning: message`` lines: legal but probably unintended settings.
    warnings: tuple[str, ...] = ()

    def peer_password(self, name: str) -> str | None:
        """The TCP-MD5 password of bgp.peers entry ``name`` (from its file or environment
        variable), None without one. InputError names the YAML place when it cannot be read."""
        for i, peer in enumerate(self.config.bgp.peers):
            if peer.name != name:
                continue
            where = f"{self.source}: bgp.peers[{i}]"
            try:
                password, origin = checks.peer_password(peer, self.source)
            except (LookupError, OSError) as exc:
                why = getattr(exc, "strerror", None) or exc
                raise InputError(f"{where}: password of peer {name}: {why}") from None
            if password is None:
                return None
            problem = checks.password_problem(password)
            if problem:
                raise InputError(f"{where}: {origin}: {problem}")
            return password
        raise InputError(f"no BGP peer named {name!r} in {self.source}")

    @property
    def secret(self) -> bytes | None:
        fleet = self.config.fleet
        if fleet.secret is not None:
            return fleet.secret.encode()
        if fleet.secret_file is not None:
            return (self.source.parent / fleet.secret_file).read_text(encoding="utf-8").strip().encode()
        return None


def _model_at(path: tuple, model: type[BaseModel] = GlbConfig) -> type[BaseModel] | None:
    """The model class a validation path points into, to suggest field names for typos."""
    current: object = model
    for elem in path:
        if isinstance(elem, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(elem))
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: object) -> object:
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _message(err: dict) -> str:
    kind, loc = err["type"], tuple(err["loc"])
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            hint = f"; did you mean {close[0]!r}?"
        else:
            hint = f"; expected one of: {', '.join(known)}" if known else ""
        return f"unknown key {loc[-1]!r}{hint}"
    if kind == "missing":
        return "required key is missing"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def _is_tag(elem: str) -> bool:
    return "[" in elem or elem[:1].isupper() or elem.startswith(("function-", "union"))


def _validation_problems(exc: ValidationError, loc: Locator) -> list[tuple[int, str]]:
    out = []
    for err in exc.errors():
        # pydantic appends union-member and validator tags ("function-after[...]",
        # "IPv4Address") to locations; they are not keys of the document.
        path = tuple(p for p in err["loc"] if isinstance(p, int) or not _is_tag(str(p)))
        line = loc.line_of(path)
        out.append((line, f"{loc.filename}:{line}: {format_path(path)}: {_message(err)}"))
    return out


def load_config(path: str | Path) -> LoadedConfig:
    """Load and fully validate ``path``; raises ConfigError (exit 2) listing every problem."""
    source = Path(path)
    data, loc = load_yaml(source)
    try:
        cfg = GlbConfig.model_validate(data)
    except ValidationError as exc:
        problems = sorted(set(_validation_problems(exc, loc)))
        raise ConfigError([p for _, p in problems]) from None
    issues = checks.all_issues(cfg, loc, source)
    if issues:
        lines = sorted({(loc.line_of(p), f"{loc.where(p)}: {format_path(p)}: {m}") for p, m in issues})
        raise ConfigError([m for _, m in lines])
    found = sorted({(loc.line_of(p), f"{loc.where(p)}: {format_path(p)}: warning: {m}")
                    for p, m in (*checks.bgp_warnings(cfg), *checks.password_file_warnings(cfg, source))})
    return LoadedConfig(cfg, source, tuple(m for _, m in found))
