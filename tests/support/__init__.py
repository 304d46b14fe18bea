"""Helpers shared by the test suites (namespaces, processes)."""
