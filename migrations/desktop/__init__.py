"""Alembic migrations of the desktop's local SQLite store, run by `desktop.store.migrate` at start."""
