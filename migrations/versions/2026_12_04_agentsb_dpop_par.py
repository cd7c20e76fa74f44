"""DPoP-bound grants (oidc_grants.dpop_jkt) and pushed authorization requests (issue 13)

Revision ID: agentsb_1
Revises: harden_0900, 0600_signin
Create Date: 2026-12-04 14:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'agentsb_1'
down_revision: str | Sequence[str] | None = ('harden_0900', '0600_signin')  # oidc_grants as it is today
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('oidc_grants', sa.Column('dpop_jkt', sa.String(length=64), nullable=True))
    op.create_table(
        'pushed_authorization_requests',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('uri_hash', sa.String(length=64), nullable=False),
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('issuer_id', sa.String(length=40), nullable=False),
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('used_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('uri_hash'),
    )
    op.create_index(op.f('ix_pushed_authorization_requests_account_id'), 'pushed_authorization_requests',
                    ['account_id'], unique=False)
    op.create_index(op.f('ix_pushed_authorization_requests_expires_at'), 'pushed_authorization_requests',
                    ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_pushed_authorization_requests_expires_at'),
                  table_name='pushed_authorization_requests')
    op.drop_index(op.f('ix_pushed_authorization_requests_account_id'),
                  table_name='pushed_authorization_requests')
    op.drop_table('pushed_authorization_requests')
    op.drop_column('oidc_grants', 'dpop_jkt')
