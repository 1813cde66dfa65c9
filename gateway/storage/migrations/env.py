"""Alembic's environment: run by gateway.storage.migrate on a connection it opened (never
from a URL of its own), so one code path migrates SQLite and PostgreSQL."""

from alembic import context

from gateway.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
)
with context.begin_transaction():
    context.run_migrations()
