"""runtime: the shared failure throttle's counters (UNLOGGED)

Revision ID: 0600_runtime
Revises: 0500
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0600_runtime'
down_revision: str | Sequence[str] | None = '0500'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE UNLOGGED TABLE auth_failures (
            counter VARCHAR(400) NOT NULL,
            window_start BIGINT NOT NULL,
            failures INTEGER NOT NULL,
            expires_at BIGINT NOT NULL,
            CONSTRAINT pk_auth_failures PRIMARY KEY (counter)
        )""")
    op.execute("CREATE INDEX ix_auth_failures_expires_at ON auth_failures (expires_at)")


def downgrade() -> None:
    op.drop_table('auth_failures')
