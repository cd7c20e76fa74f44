"""users.username_skeleton: the look-alike key of a username (issue 9)

Revision ID: harden_0900
Revises: 0203
Create Date: 2026-12-03 19:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'harden_0900'
down_revision: str | Sequence[str] | None = '0203'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('users', sa.Column('username_skeleton', sa.String(length=320), nullable=True))
    op.create_index('ix_users_issuer_id_username_skeleton', 'users', ['issuer_id', 'username_skeleton'],
                    unique=False)
    # Existing users get their skeleton, so a look-alike of them is refused too.
    from app.user.identifiers import skeleton

    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, username_normalized FROM users WHERE status <> 'deleted'"))
    for user_id, normalized in rows.fetchall():
        bind.execute(sa.text("UPDATE users SET username_skeleton = :s WHERE id = :id"),
                     {"s": skeleton(normalized), "id": user_id})


def downgrade() -> None:
    op.drop_index('ix_users_issuer_id_username_skeleton', table_name='users')
    op.drop_column('users', 'username_skeleton')
