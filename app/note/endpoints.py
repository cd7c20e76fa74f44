"""Notes of an account: `{A}/notes` (SDK-CONTRACT §2.10).

`backlinks` and `count` are registered before `{note_id}` so they are not taken for note ids (§1.13).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.etags import if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import DataList, Obj, Page
from app.core.session import db_session
from app.note import service
from app.note.schemas import NoteCount, NoteCreate, NoteOut, NoteRefType, NoteSubjectType, NoteUpdate

router = APIRouter(tags=["notes"])

NOTES = "/accounts/{account_id}/notes"
READ = scoped("notes", "read")
WRITE = scoped("notes", "write")


class NoteFilters:
    def __init__(
        self,
        subject_type: NoteSubjectType | None = Query(None),
        subject_id: str | None = Query(None, max_length=64),
        issuer_id: str | None = Query(None, max_length=64),
        created_by: str | None = Query(None, max_length=64),
        pinned: bool | None = Query(None),
        mentions_user_id: str | None = Query(None, max_length=64),
    ) -> None:
        self.values = {"subject_type": subject_type, "subject_id": subject_id, "issuer_id": issuer_id,
                       "created_by": created_by, "pinned": pinned, "mentions_user_id": mentions_user_id}


@router.get(NOTES, response_model=Page[NoteOut])
async def list_notes(
    account_id: str,
    filters: NoteFilters = Depends(),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The account's notes, newest first."""
    rows, has_more, cursor = await service.list_notes(session, account_id=account_id, params=params,
                                                      filters=filters.values)
    return envelopes.page([NoteOut.of(n) for n in rows], has_more=has_more, next_cursor=cursor)


@router.post(NOTES, status_code=201, response_model=Obj[NoteOut])
async def create_note(
    account_id: str,
    body: NoteCreate,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Attach a note to a user, organization, issuer, client or agent of the account."""
    note = await service.create_note(session, account_id=account_id, body=body, auth=principal)
    return envelopes.created(NoteOut.of(note))


@router.get(NOTES + "/backlinks", response_model=DataList[NoteOut])
async def note_backlinks(
    account_id: str,
    ref_type: NoteRefType = Query(...),
    ref_id: str = Query(..., min_length=1, max_length=64),
    limit: int = Query(50, ge=1, le=100),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Notes whose content references `[[ref_type:ref_id]]`, newest first (a plain list)."""
    rows = await service.backlinks(session, account_id=account_id, ref_type=ref_type, ref_id=ref_id,
                                   limit=limit)
    return JSONResponse({"data": [envelopes.dump(NoteOut.of(n)) for n in rows]})


@router.get(NOTES + "/count", response_model=Obj[NoteCount])
async def count_notes(
    account_id: str,
    subject_type: NoteSubjectType = Query(...),
    subject_id: str = Query(..., min_length=1, max_length=64),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """How many notes a subject has."""
    count = await service.count_notes(session, account_id=account_id, subject_type=subject_type,
                                      subject_id=subject_id)
    return envelopes.obj(NoteCount(count=count))


@router.get(NOTES + "/{note_id}", response_model=Obj[NoteOut])
async def get_note(
    account_id: str,
    note_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One note."""
    return envelopes.obj(NoteOut.of(await service.get_note(session, account_id=account_id, note_id=note_id)))


@router.patch(NOTES + "/{note_id}", response_model=Obj[NoteOut])
async def update_note(
    account_id: str,
    note_id: str,
    body: NoteUpdate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Edit a note's content or pin it."""
    note = if_match(request, await service.get_note(session, account_id=account_id, note_id=note_id,
                                                    for_update=True))
    note = await service.update_note(session, note, body, principal)
    return envelopes.obj(NoteOut.of(note))


@router.delete(NOTES + "/{note_id}", status_code=204)
async def delete_note(
    account_id: str,
    note_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete a note."""
    note = if_match(request, await service.get_note(session, account_id=account_id, note_id=note_id,
                                                    for_update=True))
    await service.delete_note(session, note, principal)
    return envelopes.no_content()
