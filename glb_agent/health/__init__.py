"""Backend health checking for directors: probes, rise/fall/damping, persistence, change callback.

Entry points: ``Checker`` (long-running, feeds table swaps), ``check_once`` (one round,
for the CLI), ``targets_from_config`` (what to probe, from glb.yml). See docs/health.md.
"""

from glb_agent.health.checker import Checker, HealthChange, HealthView, ProbeStats, check_once
from glb_agent.health.gue import GueProber
from glb_agent.health.probes import ProbeResult
from glb_agent.health.state import BackendState, Damping
from glb_agent.health.target import Target, targets_from_config

__all__ = [
    "BackendState",
    "Checker",
    "Damping",
    "GueProber",
    "HealthChange",
    "HealthView",
    "ProbeResult",
    "ProbeStats",
    "Target",
    "check_once",
    "targets_from_config",
]
