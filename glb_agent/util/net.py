"""Which addresses this host has: the one answer every "which host am I" question uses.

Read from the kernel's address list (netlink, current network namespace) rather than by
trying to ``bind()``: with ``net.ipv4.ip_nonlocal_bind=1`` (common on load balancers) a bind
to any address succeeds, and an AnyIP route makes whole prefixes bindable, so a bind test
would call other hosts' addresses ours.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def local_addresses() -> frozenset[IPAddress]:
    """Every IPv4 and IPv6 address configured on an interface of this network namespace.

    Read in a short-lived worker thread: pyroute2's synchronous IPRoute drives an asyncio
    loop of its own and refuses to run inside the caller's (the director daemon calls this
    from its event loop on SIGHUP).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_read_addresses).result()


def _read_addresses() -> frozenset[IPAddress]:
    from pyroute2 import IPRoute  # netlink socket; imported late, most commands never ask

    with IPRoute() as ipr:
        return frozenset(
            ipaddress.ip_address(a.get_attr("IFA_ADDRESS"))
            for family in (socket.AF_INET, socket.AF_INET6)
            for a in ipr.get_addr(family=family)
            if a.get_attr("IFA_ADDRESS") is not None
        )


def any_local(candidates: Iterable[IPAddress | None], local: frozenset[IPAddress] | None = None) -> bool:
    """True when one of ``candidates`` (None entries ignored) is in ``local``.

    ``local`` defaults to :func:`local_addresses`; callers resolving many hosts pass it once.
    """
    here = local_addresses() if local is None else local
    return any(c is not None and c in here for c in candidates)
