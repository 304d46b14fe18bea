"""Which entry of glb.yml this host is: the one resolver for directors and proxies.

A host is named (``--name``) or found by which of its configured addresses is local.
Callers choose the policy explicitly, because a wrong guess has different costs:

* ``strict=True`` (the data planes, the BGP feed): exactly one match or an InputError.
  Forwarding with another director's source address or interface black-holes traffic.
* ``strict=False`` (``health check`` from an operator's workstation): with no local match,
  fall back to the first entry, with a warning naming it (and, for a director, the source
  address GUE probes then use); HTTP/TCP checks still work and GUE probes fail visibly
  (wrong source address). Several local matches are still an error: that is a broken config,
  not a workstation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from glb_agent import logs
from glb_agent.config.load import LoadedConfig
from glb_agent.config.model import Director, GlbConfig, Proxy
from glb_agent.errors import InputError
from glb_agent.util.net import IPAddress, any_local, local_addresses

H = TypeVar("H", Director, Proxy)
ConfigLike = GlbConfig | LoadedConfig
_log = logs.get("config.hosts")


def _config(cfg: ConfigLike) -> GlbConfig:
    return cfg.config if isinstance(cfg, LoadedConfig) else cfg


def _where(cfg: ConfigLike) -> str:
    return f" in {cfg.source}" if isinstance(cfg, LoadedConfig) else ""


def _resolve(cfg: ConfigLike, role: str, plural: str, hosts: Sequence[H],
             addresses: Callable[[H], Sequence[IPAddress | None]], name: str | None, strict: bool,
             local: frozenset[IPAddress] | None, uses: Callable[[H], str] = lambda h: "") -> H:
    if name is not None:
        for h in hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in hosts) or "none"
        raise InputError(f"no {role} named {name!r}{_where(cfg)} ({plural}: {known})")
    if not hosts:
        raise InputError(f"no {plural} configured{_where(cfg)}")
    here = local_addresses() if local is None else local
    matches = [h for h in hosts if any_local(addresses(h), here)]
    if len(matches) == 1:
        return matches[0]
    if not matches and not strict:
        first = hosts[0]
        logs.event(_log, "host_not_in_config", logging.WARNING, role=role, using=first.name,
                   detail=f"none of the {plural}' addresses{_where(cfg)} is local: acting as the first, "
                          f"{first.name!r}{uses(first)} (pass --name to choose)")
        return first
    raise InputError(f"cannot tell which {role} this host is "
                     f"({'none' if not matches else len(matches)} of the {plural}' addresses are local); "
                     "pass --name")


def this_director(cfg: ConfigLike, name: str | None = None, *, strict: bool,
                  local: frozenset[IPAddress] | None = None) -> Director:
    """The director named ``name``, else the one whose address, address6 or GUE source is local.

    ``local`` overrides the host's address list (tests, or a caller resolving several roles).
    """
    c = _config(cfg)
    return _resolve(cfg, "director", "directors", c.directors,
                    lambda d: (d.address, d.outer_source, d.address6), name, strict, local,
                    uses=lambda d: f"; GUE probes come from its source address {d.outer_source}")


def this_proxy(cfg: ConfigLike, name: str | None = None, *, strict: bool,
               local: frozenset[IPAddress] | None = None) -> Proxy:
    """The proxy named ``name``, else the one whose address is local."""
    c = _config(cfg)
    return _resolve(cfg, "proxy", "proxies", c.proxies, lambda p: (p.address,), name, strict, local)
