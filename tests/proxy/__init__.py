"""Proxy data-plane tests."""
