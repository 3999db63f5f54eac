"""Alembic migrations of the store (run by :func:`geo.store.migrate`)."""
