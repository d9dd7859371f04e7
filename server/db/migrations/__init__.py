"""Alembic migration environment of the server database (run via server.db.migrate)."""
