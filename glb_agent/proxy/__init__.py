"""Proxy host setup: VIPs on loopback, ARP/rp_filter sysctls, managed neighbours, the XDP decap."""

from glb_agent.proxy.config import proxy_settings
from glb_agent.proxy.host import ProxyHost

__all__ = ["ProxyHost", "proxy_settings"]
