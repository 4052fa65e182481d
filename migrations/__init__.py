"""Alembic migrations (run with ``robustgate migrate``; the server runs them at start)."""
