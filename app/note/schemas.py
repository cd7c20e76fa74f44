"""Note bodies and the `Note` shape (§2.10, §3.1). Note times are float-typed in the SDK: integer
milliseconds are sent, as everywhere else."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import StrictBool, StringConstraints

from app.core.responses import ResponseModel
from app.core.validation import StrictModel

NoteSubjectType = Literal["user", "org", "issuer", "client", "agent"]
NoteRefType = Literal["user", "org", "issuer", "client", "webhook", "api_key"]
SUBJECT_TYPES: tuple[str, ...] = NoteSubjectType.__args__
REF_TYPES: tuple[str, ...] = NoteRefType.__args__
MAX_CONTENT = 10_000

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
Content = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONTENT)]


class NoteCreate(StrictModel):
    subject_type: NoteSubjectType
    subject_id: EntityId
    content: Content
    # Defaults to the subject's issuer; must match it when given.
    issuer_id: EntityId | None = None
    pinned: StrictBool = False


class NoteUpdate(StrictModel):
    content: Content | None = None
    pinned: StrictBool | None = None


class NoteOut(ResponseModel):
    id: str
    account_id: str
    issuer_id: str | None
    subject_type: str
    subject_id: str
    content: str
    pinned: bool
    mentions: list[Any]
    references: list[Any]
    created_by: str
    created_at: int
    updated_by: str | None
    updated_at: int | None


class NoteCount(ResponseModel):
    count: int
