"""device authorizations, registration tokens, client registrations (issue 13)

Revision ID: agentsa_1
Revises: harden_0900
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'agentsa_1'
down_revision: str | Sequence[str] | None = 'harden_0900'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'device_authorizations',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('issuer_id', sa.String(length=40), nullable=False),
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('device_code_hash', sa.String(length=64), nullable=False),
        sa.Column('user_code_hash', sa.String(length=64), nullable=False),
        sa.Column('scope', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('user_id', sa.String(length=40), nullable=True),
        sa.Column('session_id', sa.String(length=40), nullable=True),
        sa.Column('auth_time', sa.BigInteger(), nullable=True),
        sa.Column('amr', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
        sa.Column('acr', sa.String(length=64), nullable=True),
        sa.Column('interval', sa.Integer(), nullable=False),
        sa.Column('last_polled_at', sa.BigInteger(), nullable=True),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('decided_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id']),
        sa.ForeignKeyConstraint(['issuer_id'], ['issuers.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('device_code_hash'),
    )
    op.create_index(op.f('ix_device_authorizations_account_id'), 'device_authorizations', ['account_id'])
    op.create_index(op.f('ix_device_authorizations_issuer_id'), 'device_authorizations', ['issuer_id'])
    op.create_index(op.f('ix_device_authorizations_user_code_hash'), 'device_authorizations',
                    ['user_code_hash'])
    op.create_table(
        'registration_tokens',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('issuer_id', sa.String(length=40), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('used_at', sa.BigInteger(), nullable=True),
        sa.Column('client_id', sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id']),
        sa.ForeignKeyConstraint(['issuer_id'], ['issuers.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index(op.f('ix_registration_tokens_account_id'), 'registration_tokens', ['account_id'])
    op.create_index(op.f('ix_registration_tokens_issuer_id'), 'registration_tokens', ['issuer_id'])
    op.create_table(
        'client_registrations',
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('issuer_id', sa.String(length=40), nullable=False),
        sa.Column('access_token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id']),
        sa.ForeignKeyConstraint(['client_id'], ['clients.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['issuer_id'], ['issuers.id']),
        sa.PrimaryKeyConstraint('client_id'),
        sa.UniqueConstraint('access_token_hash'),
    )
    op.create_index(op.f('ix_client_registrations_account_id'), 'client_registrations', ['account_id'])
    op.create_index(op.f('ix_client_registrations_issuer_id'), 'client_registrations', ['issuer_id'])


def downgrade() -> None:
    op.drop_table('client_registrations')
    op.drop_table('registration_tokens')
    op.drop_table('device_authorizations')
