"""Renderers: config files for directors and routers, written atomically and deterministically."""
