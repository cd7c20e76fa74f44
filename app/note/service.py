"""Notes: free text an operator attaches to a user, organization, issuer, client or agent.

Mentions and references are parsed from the content on every write:

- a mention is `@usr_<id>` (not preceded by a word character): `mentions` lists each distinct
  user id that exists in the account, as `{"mentioned_user_id", "created_at"}`;
- a reference is `[[<type>:<id>]]` with `<type>` a NoteRefType (`user`, `org`, `issuer`, `client`,
  `webhook`, `api_key`): `references` lists each distinct target that exists in the account, as
  `{"ref_type", "ref_id", "ref_issuer_id", "created_at"}` (`ref_issuer_id` is the target's issuer
  for users, organizations, clients and issuers, else null).

Ids that do not resolve in the caller's account are left as plain text, so a note never points
across tenants. A mention or reference kept through an edit keeps its first `created_at`.
At most 50 of each are kept per note.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.core.rows import one_or_404
from app.events.service import record
from app.models.agent import Agent
from app.models.api_key import ApiKey
from app.models.client import Client
from app.models.issuer import Issuer
from app.models.note import Note
from app.models.organization import Organization
from app.models.user import User
from app.models.webhook import Webhook
from app.note.schemas import REF_TYPES, NoteCreate, NoteUpdate

MAX_LINKS = 50
MENTION = re.compile(r"(?<![\w@])@(usr_[A-Za-z0-9]{1,60})\b")
REFERENCE = re.compile(r"\[\[(" + "|".join(REF_TYPES) + r"):([A-Za-z0-9_\-]{1,64})\]\]")

# Entities a note may be about or point to; the issuer-scoped ones carry their issuer id.
_MODELS: dict[str, Any] = {"user": User, "org": Organization, "issuer": Issuer, "client": Client,
                           "agent": Agent, "webhook": Webhook, "api_key": ApiKey}
_ISSUER_SCOPED = ("user", "org", "client", "agent")


def parse_mentions(content: str) -> list[str]:
    return list(dict.fromkeys(MENTION.findall(content)))[:MAX_LINKS]


def parse_references(content: str) -> list[tuple[str, str]]:
    return list(dict.fromkeys(REFERENCE.findall(content)))[:MAX_LINKS]


async def _existing(session: AsyncSession, account_id: str, kind: str, ids: list[str]
                    ) -> dict[str, str | None]:
    """{id: issuer id (or None)} of the given ids that exist, undeleted, in the account."""
    if not ids:
        return {}
    model = _MODELS[kind]
    issuer_col = model.issuer_id if kind in _ISSUER_SCOPED else model.id if kind == "issuer" else None
    cols = [model.id, issuer_col] if issuer_col is not None else [model.id]
    stmt = select(*cols).where(model.id.in_(ids), model.account_id == account_id)
    if hasattr(model, "status"):
        stmt = stmt.where(model.status != "deleted")
    rows = (await session.execute(stmt)).all()
    return {r[0]: (r[1] if issuer_col is not None else None) for r in rows}


async def _links(session: AsyncSession, note: Note, content: str) -> None:
    now = now_ms()
    previous_m = {m["mentioned_user_id"]: m["created_at"] for m in note.mentions or []}
    users = await _existing(session, note.account_id, "user", parse_mentions(content))
    note.mentions = [{"mentioned_user_id": uid, "created_at": previous_m.get(uid, now)}
                     for uid in parse_mentions(content) if uid in users]
    previous_r = {(r["ref_type"], r["ref_id"]): r["created_at"] for r in note.references or []}
    refs = parse_references(content)
    found: dict[tuple[str, str], str | None] = {}
    for kind in {k for k, _ in refs}:
        for rid, issuer in (await _existing(session, note.account_id, kind,
                                            [i for k, i in refs if k == kind])).items():
            found[(kind, rid)] = issuer
    note.references = [{"ref_type": k, "ref_id": i, "ref_issuer_id": found[(k, i)],
                        "created_at": previous_r.get((k, i), now)}
                       for k, i in refs if (k, i) in found]


async def _subject_issuer(session: AsyncSession, account_id: str, body: NoteCreate) -> str | None:
    """The subject's issuer; 422 when the subject is not in the account or issuer_id disagrees."""
    found = await _existing(session, account_id, body.subject_type, [body.subject_id])
    if body.subject_id not in found:
        raise ValidationFailed(f"No {body.subject_type} {body.subject_id} in this account",
                               field="subject_id", code="not_found")
    issuer = found[body.subject_id]
    if body.issuer_id is not None and body.issuer_id != issuer:
        raise ValidationFailed("issuer_id must be the subject's issuer", field="issuer_id")
    return issuer


async def _event(session: AsyncSession, note: Note, type: str, auth: Principal,
                 data: dict[str, Any]) -> None:
    # The subject's id goes in the trail's user/org columns, so its timeline finds the note.
    await record(session, type=type, account_id=note.account_id, issuer_id=note.issuer_id,
                 user_id=note.subject_id if note.subject_type == "user" else None,
                 org_id=note.subject_id if note.subject_type == "org" else None,
                 subject={"type": "note", "id": note.id},
                 data={"subject_type": note.subject_type, "subject_id": note.subject_id, **data}, auth=auth)


async def create_note(session: AsyncSession, *, account_id: str, body: NoteCreate, auth: Principal) -> Note:
    issuer_id = await _subject_issuer(session, account_id, body)
    note = Note(id=new_id("note"), account_id=account_id, issuer_id=issuer_id,
                subject_type=body.subject_type, subject_id=body.subject_id, content=body.content,
                pinned=body.pinned, created_by=auth.actor_id, mentions=[], references=[],
                created_at=now_ms())
    await _links(session, note, body.content)
    session.add(note)
    await session.flush()
    await _event(session, note, "note.created", auth, {})
    return note


async def get_note(session: AsyncSession, *, account_id: str, note_id: str, for_update: bool = False) -> Note:
    stmt = select(Note).where(Note.id == note_id, Note.account_id == account_id)
    return await one_or_404(session, stmt, "note", for_update=for_update)


async def update_note(session: AsyncSession, note: Note, body: NoteUpdate, auth: Principal) -> Note:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "content" in changes:
        note.content = changes["content"]
        await _links(session, note, note.content)
    if "pinned" in changes:
        note.pinned = changes["pinned"]
    note.updated_by = auth.actor_id
    note.updated_at = max(now_ms(), note.version + 1)
    await session.flush()
    await _event(session, note, "note.updated", auth, {"changed": sorted(changes)})
    return note


async def delete_note(session: AsyncSession, note: Note, auth: Principal) -> None:
    await session.delete(note)
    await session.flush()
    await _event(session, note, "note.deleted", auth, {})


def _filtered(account_id: str, filters: dict[str, Any]) -> Select[Any]:
    stmt: Select[Any] = select(Note).where(Note.account_id == account_id)
    for name in ("subject_type", "subject_id", "issuer_id", "created_by", "pinned"):
        if filters.get(name) is not None:
            stmt = stmt.where(getattr(Note, name) == filters[name])
    if filters.get("mentions_user_id"):
        stmt = stmt.where(Note.mentions.contains([{"mentioned_user_id": filters["mentions_user_id"]}]))
    return stmt


async def list_notes(session: AsyncSession, *, account_id: str, params: PageParams,
                     filters: dict[str, Any]) -> tuple[list[Note], bool, str | None]:
    return await paginate(session, _filtered(account_id, filters), Note.id, params)


async def backlinks(session: AsyncSession, *, account_id: str, ref_type: str, ref_id: str,
                    limit: int) -> list[Note]:
    """Notes whose content references the entity, newest first."""
    stmt = select(Note).where(Note.account_id == account_id, Note.references.contains(
        [{"ref_type": ref_type, "ref_id": ref_id}])).order_by(Note.id.desc()).limit(limit)
    return list(await session.scalars(stmt))


async def count_notes(session: AsyncSession, *, account_id: str, subject_type: str, subject_id: str) -> int:
    return int(await session.scalar(select(func.count()).select_from(Note).where(
        Note.account_id == account_id, Note.subject_type == subject_type,
        Note.subject_id == subject_id)) or 0)
