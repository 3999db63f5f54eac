"""Alembic environment: runs on the connection handed over by ``geo.store.migrate``."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline mode is not used
    raise RuntimeError("run migrations through geo.store.migrate(engine)")

# The version table lives in the schema the tables go to (the first of search_path), so a
# store in its own schema is never mistaken for the one in ``public`` that search_path
# also reaches.
version_schema = None
if connection.dialect.name == "postgresql":
    version_schema = connection.exec_driver_sql("SELECT current_schema()").scalar()

context.configure(
    connection=connection,
    target_metadata=None,
    version_table_schema=version_schema,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
