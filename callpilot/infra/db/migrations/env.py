"""Alembic environment: runs revisions on the connection handed over by callpilot.infra.db.migrations."""
from alembic import context

from callpilot.infra.db.migrations import render_item

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations through callpilot (create_schema, or "
                     "`python -m callpilot.infra.db.migrations ...`), not the alembic command")

context.configure(
    connection=connection,
    target_metadata=context.config.attributes.get("target_metadata"),
    render_as_batch=True,            # ALTERs that SQLite cannot do become table copies
    render_item=render_item,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
