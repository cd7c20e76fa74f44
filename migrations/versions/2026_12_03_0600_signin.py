"""signin: pending sign-ins, second-factor throttle, amr/acr on codes and grants, device cookie
secrets, passkey credentials

Revision ID: 0600_signin
Revises: 0100, 0203
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0600_signin'
down_revision: str | Sequence[str] | None = ('0100', '0203')
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json(name: str, default: str) -> sa.Column:
    return sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), server_default=default, nullable=False)


def upgrade() -> None:
    op.create_table(
        'pending_signins',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('issuer_id', sa.String(length=40), nullable=False),
        sa.Column('user_id', sa.String(length=40), nullable=True),
        sa.Column('cookie_hash', sa.String(length=64), nullable=False),
        sa.Column('stage', sa.String(length=32), nullable=False),
        _json('methods', '[]'),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('return_to', sa.Text(), nullable=False),
        sa.Column('challenge', sa.String(length=128), nullable=True),
        _json('data', '{}'),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_pending_signins_account_id_accounts')),
        sa.ForeignKeyConstraint(['issuer_id'], ['issuers.id'], name=op.f('fk_pending_signins_issuer_id_issuers')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_signins')),
        sa.UniqueConstraint('cookie_hash', name=op.f('uq_pending_signins_cookie_hash')),
    )
    op.create_index(op.f('ix_pending_signins_account_id'), 'pending_signins', ['account_id'])
    op.create_index(op.f('ix_pending_signins_issuer_id'), 'pending_signins', ['issuer_id'])
    op.create_index(op.f('ix_pending_signins_user_id'), 'pending_signins', ['user_id'])
    op.create_table(
        'second_factor_throttle',
        sa.Column('user_id', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('issuer_id', sa.String(length=40), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('next_allowed_at', sa.BigInteger(), nullable=False),
        sa.Column('last_failure_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_second_factor_throttle_account_id_accounts')),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_second_factor_throttle')),
    )
    op.create_index(op.f('ix_second_factor_throttle_account_id'), 'second_factor_throttle', ['account_id'])
    for table in ('authorization_codes', 'oidc_grants'):
        op.add_column(table, _json('amr', '[]'))
        op.add_column(table, sa.Column('acr', sa.String(length=64), nullable=True))
    op.add_column('user_trusted_devices', sa.Column('secret_hash', sa.String(length=64), nullable=True))
    op.add_column('user_verifiers', sa.Column('credential_id', sa.String(length=1400), nullable=True))
    op.add_column('user_verifiers', sa.Column('sign_count', sa.BigInteger(), nullable=True))
    op.create_index('ix_user_verifiers_issuer_id_credential_id', 'user_verifiers',
                    ['issuer_id', 'credential_id'])


def downgrade() -> None:
    op.drop_index('ix_user_verifiers_issuer_id_credential_id', table_name='user_verifiers')
    op.drop_column('user_verifiers', 'sign_count')
    op.drop_column('user_verifiers', 'credential_id')
    op.drop_column('user_trusted_devices', 'secret_hash')
    for table in ('authorization_codes', 'oidc_grants'):
        op.drop_column(table, 'acr')
        op.drop_column(table, 'amr')
    op.drop_table('second_factor_throttle')
    op.drop_table('pending_signins')
