"""Utilities every layer may use (atomic file writes, state and pin directories, local
addresses). This package is the bottom layer: it imports nothing else from glb_agent except
``glb_agent.errors``, so config, table, data plane and daemons can all depend on it without
creating cycles (see docs/architecture.md).
"""
