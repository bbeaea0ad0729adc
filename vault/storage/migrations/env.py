"""Alembic environment for the catalog.

Run through :func:`vault.storage.db.upgrade`, which hands over an open connection; there is no
alembic.ini and no offline mode, so the schema can only be changed the one tested way.
"""

from __future__ import annotations

from alembic import context

from vault.storage.catalog import Base
import vault.ledger.custody  # noqa: F401  (registers the custody tables on Base.metadata)
import vault.access.identity  # noqa: F401  (users, user_sites, api_tokens)
import vault.casework.cases  # noqa: F401  (case_owners, case_members)
import vault.casework.shares  # noqa: F401  (shares, share_items)
import vault.casework.sar  # noqa: F401  (subject_access_requests, sar_windows, sar_disclosures)
import vault.casework.jobs  # noqa: F401  (jobs)
import vault.casework.intermediates  # noqa: F401  (job_intermediates)
import vault.access.credentials  # noqa: F401  (user_credentials)
import vault.access.web_sessions  # noqa: F401  (web_sessions)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through vault.storage.db.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite needs batch mode to alter tables
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
