from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class AuthFailure(Base):
    """Failure counters of the shared throttle (app.runtime.throttle), one row per counter and
    fixed window. UNLOGGED: lost on a crash, which only resets the counters."""

    __tablename__ = "auth_failures"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    counter: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, nullable=False)  # ms
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
