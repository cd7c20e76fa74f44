"""events: the list filters' indexes ordered by id (issuer, user, client)

events.list pages newest first by id (keyset). A filter on issuer_id, user_id or client_id used a
single-column index and then sorted every matching row; (column, id) serves the page straight
from the index at any depth. The single-column indexes are their prefixes, so they go.

Revision ID: 0600_ops
Revises: 0001
Create Date: 2026-12-03 19:55:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0600_ops'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ('issuer_id', 'user_id', 'client_id')


def upgrade() -> None:
    for column in COLUMNS:
        op.create_index(op.f(f'ix_events_{column}_id'), 'events', [column, 'id'], unique=False)
        op.drop_index(op.f(f'ix_events_{column}'), table_name='events')


def downgrade() -> None:
    for column in COLUMNS:
        op.create_index(op.f(f'ix_events_{column}'), 'events', [column], unique=False)
        op.drop_index(op.f(f'ix_events_{column}_id'), table_name='events')
