"""Alembic's environment for the call store: run by CallStore.open() on the connection it passes in."""

from alembic import context

from calls.models import Base

VERSION_TABLE = "call_store_version"  # its own name: the store can share a PostgreSQL database with other schemas

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE,
                  render_as_batch=connection.dialect.name == "sqlite")  # SQLite alters a table by copying it
with context.begin_transaction():
    context.run_migrations()
