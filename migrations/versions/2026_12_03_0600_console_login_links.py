"""console login links

Revision ID: 0600_console
Revises: 0500
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0600_console'
down_revision: str | Sequence[str] | None = '0500'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'console_login_links',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('used_at', sa.BigInteger(), nullable=True),
        sa.Column('key_id', sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index(op.f('ix_console_login_links_account_id'), 'console_login_links', ['account_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_console_login_links_account_id'), table_name='console_login_links')
    op.drop_table('console_login_links')
