"""outbox: messages (email, later back-channel logout) written in the causing transaction (issue 11)

Revision ID: email_1
Revises: harden_0900
Create Date: 2026-12-04 14:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'email_1'
down_revision: str | Sequence[str] | None = 'harden_0900'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'outbox',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.String(length=40), nullable=False),
        sa.Column('issuer_id', sa.String(length=40), nullable=True),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('purpose', sa.String(length=64), nullable=True),
        sa.Column('ref_id', sa.String(length=40), nullable=True),
        sa.Column('message_id', sa.String(length=255), nullable=False),
        sa.Column('payload_encrypted', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.BigInteger(), nullable=False),
        sa.Column('last_error', sa.String(length=1024), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('sent_at', sa.BigInteger(), nullable=True),
        sa.Column('updated_at', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
        sa.UniqueConstraint('message_id', name=op.f('uq_outbox_message_id')),
    )
    op.create_index('ix_outbox_due', 'outbox', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index(op.f('ix_outbox_account_id_id'), 'outbox', ['account_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_outbox_account_id_id'), table_name='outbox')
    op.drop_index('ix_outbox_due', table_name='outbox', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('outbox')
