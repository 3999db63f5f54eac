"""Routers, one module per capability."""
