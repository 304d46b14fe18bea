"""glb-appliance agent: one declarative YAML drives directors, proxies, BGP and health checks."""

__version__ = "0.1.0"
