"""federated_identities (upstream subject per auth method or organization connection) and the
organization's encrypted OIDC connection secret (issue 12)

Revision ID: fedoidc_1
Revises: harden_0900
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'fedoidc_1'
down_revision: str | Sequence[str] | None = 'harden_0900'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'federated_identities',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('issuer_id', sa.String(length=40), nullable=False),
        sa.Column('user_id', sa.String(length=40), nullable=False),
        sa.Column('source_type', sa.String(length=16), nullable=False),
        sa.Column('source_id', sa.String(length=40), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('last_used_at', sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_federated_identities_account_id_accounts')),
        sa.ForeignKeyConstraint(['issuer_id'], ['issuers.id'],
                                name=op.f('fk_federated_identities_issuer_id_issuers')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_federated_identities_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_federated_identities')),
        sa.UniqueConstraint('issuer_id', 'source_id', 'subject',
                            name=op.f('uq_federated_identities_issuer_id_source_id_subject')),
    )
    op.create_index(op.f('ix_federated_identities_account_id'), 'federated_identities', ['account_id'])
    op.create_index(op.f('ix_federated_identities_issuer_id'), 'federated_identities', ['issuer_id'])
    op.create_index(op.f('ix_federated_identities_user_id'), 'federated_identities', ['user_id'])
    op.add_column('organizations', sa.Column('sso_client_secret_encrypted', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('organizations', 'sso_client_secret_encrypted')
    op.drop_table('federated_identities')
