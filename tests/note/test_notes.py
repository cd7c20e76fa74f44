"""Notes through the official SDK and raw HTTP: CRUD, mentions and references, filters, backlinks,
count, events, isolation."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, PreconditionFailedError, ValidationError
from authpi_admin.generated.models import Note, NotesCountResponse

from tests.conftest import AccountCredentials, count_rows
from tests.fixtures.tenancy import event_types, last_event


async def new_user(admin: AuthPIAdmin, issuer_id: str, name: str = "ada") -> str:
    user = await admin.issuer(issuer_id).users.create(
        {"username_type": "email", "username": f"{name}@globex.example", "profile": {"first_name": name}})
    return user.id


def notes_path(account_id: str) -> str:
    return f"/v1/accounts/{account_id}/notes"


class TestCreateNote:
    async def test_note_on_a_user(self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str,
                                  pg: asyncpg.Pool):
        uid = await new_user(admin, issuer_id)
        note = await admin.notes.create({"subject_type": "user", "subject_id": uid,
                                         "content": "Ada asked about invoices", "pinned": True})
        assert isinstance(note, Note)
        assert note.id.startswith("note_")
        assert (note.account_id, note.issuer_id, note.subject_type, note.subject_id, note.pinned) == (
            account.account_id, issuer_id, "user", uid, True)
        assert note.created_by == account.key_id
        assert isinstance(note.created_at, float)
        assert note.created_at == int(note.created_at)  # integer ms on the wire
        assert (note.updated_at, note.updated_by) == (None, None)
        assert note._etag == f'"{int(note.created_at)}"'
        row = await pg.fetchrow("SELECT * FROM notes WHERE id = $1", note.id)
        assert row["account_id"] == account.account_id
        event = await last_event(pg, account.account_id, "note.created")
        assert json.loads(event["subject"]) == {"type": "note", "id": note.id}
        assert (event["user_id"], event["issuer_id"]) == (uid, issuer_id)
        assert "invoices" not in event["data"]

    async def test_mentions_and_references_are_parsed(self, admin: AuthPIAdmin, issuer_id: str,
                                                      other_issuer_id: str):
        ada, bob = await new_user(admin, issuer_id, "ada"), await new_user(admin, issuer_id, "bob")
        org = await admin.issuer(issuer_id).organizations.create({"name": "Globex"})
        content = (f"@{ada} and @{bob} (again @{ada}) see [[org:{org.id}]] and [[issuer:{issuer_id}]]; "
                   f"ignored: mail@{ada}x, @usr_unknown1, [[org:org_unknown]], [[issuer:{other_issuer_id}]], "
                   f"[[planet:mars]]")
        note = await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id,
                                         "content": content})
        assert [m.mentioned_user_id for m in note.mentions] == [ada, bob]
        assert [(r.ref_type, r.ref_id, r.ref_issuer_id) for r in note.references] == [
            ("org", org.id, issuer_id), ("issuer", issuer_id, issuer_id)]
        first_at = note.mentions[0].created_at
        updated = await admin.notes.update(note.id, {"content": f"only @{ada} now"})
        assert [(m.mentioned_user_id, m.created_at) for m in updated.mentions] == [(ada, first_at)]
        assert updated.references == []

    async def test_issuer_defaults_to_subject_issuer_and_must_match(self, admin: AuthPIAdmin, issuer_id: str,
                                                                    second_issuer_id: str):
        uid = await new_user(admin, issuer_id)
        with pytest.raises(ValidationError) as err:
            await admin.notes.create({"subject_type": "user", "subject_id": uid, "content": "x",
                                      "issuer_id": second_issuer_id})
        assert err.value.fields[0]["field"] == "issuer_id"
        ok = await admin.notes.create({"subject_type": "user", "subject_id": uid, "content": "x",
                                       "issuer_id": issuer_id})
        assert ok.issuer_id == issuer_id

    @pytest.mark.parametrize("body", [
        {}, {"subject_type": "planet", "subject_id": "x", "content": "c"},
        {"subject_type": "issuer", "subject_id": "ISSUER", "content": ""},
        {"subject_type": "issuer", "subject_id": "ISSUER", "content": "x" * 10_001},
        {"subject_type": "issuer", "subject_id": "ISSUER", "content": "c", "pinned": "yes"},
        {"subject_type": "issuer", "subject_id": "ISSUER", "content": "c", "extra": 1},
        {"subject_type": "issuer", "subject_id": "i_01JUNKNOWN0000000000000000", "content": "c"},
        {"subject_type": "user", "subject_id": "ISSUER", "content": "c"},
        {"subject_type": "issuer", "subject_id": "a b", "content": "c"},
    ])
    async def test_bad_input_is_422_and_writes_nothing(self, client: httpx.AsyncClient,
                                                       account: AccountCredentials, issuer_id: str,
                                                       pg: asyncpg.Pool, body: dict):
        body = {k: (issuer_id if v == "ISSUER" else v) for k, v in body.items()}
        before = await count_rows(pg, "events", account.account_id)
        resp = await client.post(notes_path(account.account_id), json=body, auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await count_rows(pg, "notes", account.account_id) == 0
        assert await count_rows(pg, "events", account.account_id) == before

    async def test_subject_of_another_account_is_422(self, admin: AuthPIAdmin, other_issuer_id: str):
        with pytest.raises(ValidationError):
            await admin.notes.create({"subject_type": "issuer", "subject_id": other_issuer_id,
                                      "content": "c"})


class TestListNotes:
    async def test_filters_and_pages(self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str):
        ada = await new_user(admin, issuer_id)
        a = await admin.notes.create({"subject_type": "user", "subject_id": ada, "content": "a",
                                      "pinned": True})
        b = await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id,
                                      "content": f"ping @{ada}"})
        c = await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id, "content": "c"})
        first = await admin.notes.list(limit=2)
        assert [n.id for n in first.data] == [c.id, b.id]
        assert first.has_more
        rest = await admin.notes.list(limit=2, cursor=first.next_cursor)
        assert [n.id for n in rest.data] == [a.id]
        assert not rest.has_more
        assert [n.id for n in (await admin.notes.list(subject_type="user", subject_id=ada)).data] == [a.id]
        assert [n.id for n in (await admin.notes.list(pinned=True)).data] == [a.id]
        assert [n.id for n in (await admin.notes.list(pinned=False)).data] == [c.id, b.id]
        assert [n.id for n in (await admin.notes.list(mentions_user_id=ada)).data] == [b.id]
        assert len((await admin.notes.list(issuer_id=issuer_id)).data) == 3
        assert len((await admin.notes.list(created_by=account.key_id)).data) == 3
        assert (await admin.notes.list(created_by="key_someone_else")).data == []
        with pytest.raises(ValidationError):
            await admin.notes.list(subject_type="planet")


class TestBacklinksAndCount:
    async def test_backlinks_is_a_plain_list(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                             account: AccountCredentials, issuer_id: str):
        ada = await new_user(admin, issuer_id)
        a = await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id,
                                      "content": f"see [[user:{ada}]]"})
        b = await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id,
                                      "content": f"again [[user:{ada}]]"})
        await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id, "content": "none"})
        links = await admin.notes.backlinks("user", ada)
        assert [n.id for n in links] == [b.id, a.id]
        assert [n.id for n in await admin.notes.backlinks("user", ada, limit=1)] == [b.id]
        raw = await client.get(f"{notes_path(account.account_id)}/backlinks",
                               params={"ref_type": "user", "ref_id": ada}, auth=account.basic)
        assert list(raw.json()) == ["data"]
        with pytest.raises(ValidationError):
            await admin.notes.backlinks("planet", ada)

    async def test_count(self, admin: AuthPIAdmin, issuer_id: str):
        ada = await new_user(admin, issuer_id)
        for text in ("one", "two"):
            await admin.notes.create({"subject_type": "user", "subject_id": ada, "content": text})
        got = await admin.notes.count("user", ada)
        assert isinstance(got, NotesCountResponse)
        assert got.count == 2
        assert (await admin.notes.count("issuer", issuer_id)).count == 0


class TestUpdateNote:
    async def test_update_records_editor(self, admin: AuthPIAdmin, account: AccountCredentials,
                                         issuer_id: str, pg: asyncpg.Pool):
        note = await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id, "content": "a"})
        updated = await admin.notes.update(note.id, {"content": "b", "pinned": True}, if_match=note._etag)
        assert (updated.content, updated.pinned, updated.updated_by) == ("b", True, account.key_id)
        assert updated.updated_at > note.created_at
        assert await admin.notes.get(note.id) == updated
        with pytest.raises(PreconditionFailedError):
            await admin.notes.update(note.id, {"content": "c"}, if_match=note._etag)
        event = await last_event(pg, account.account_id, "note.updated")
        assert json.loads(event["data"])["changed"] == ["content", "pinned"]

    @pytest.mark.parametrize("body", [{"content": ""}, {"pinned": "no"}, {"subject_id": "x"}])
    async def test_bad_update_writes_nothing(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                             account: AccountCredentials, issuer_id: str,
                                             pg: asyncpg.Pool, body: dict):
        note = await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id, "content": "a"})
        before = await count_rows(pg, "events", account.account_id)
        resp = await client.patch(f"{notes_path(account.account_id)}/{note.id}", json=body,
                                  auth=account.basic)
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"]
        assert await count_rows(pg, "events", account.account_id) == before
        assert await admin.notes.get(note.id) == note


class TestDeleteNote:
    async def test_delete_then_404(self, admin: AuthPIAdmin, account: AccountCredentials, issuer_id: str,
                                   pg: asyncpg.Pool):
        note = await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id, "content": "a"})
        await admin.notes.delete(note.id, if_match=note._etag)
        with pytest.raises(NotFoundError):
            await admin.notes.get(note.id)
        with pytest.raises(NotFoundError):
            await admin.notes.delete(note.id)
        assert await count_rows(pg, "notes", account.account_id) == 0
        assert (await event_types(pg, account.account_id))[-2:] == ["note.created", "note.deleted"]


class TestNoteIsolation:
    async def test_other_account_gets_404_on_every_route(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                                         account: AccountCredentials,
                                                         other_account: AccountCredentials, issuer_id: str):
        note = await admin.notes.create({"subject_type": "issuer", "subject_id": issuer_id,
                                         "content": f"[[issuer:{issuer_id}]]"})
        base = notes_path(account.account_id)
        for method, path, body, params in [
            ("GET", base, None, None),
            ("POST", base, {"subject_type": "issuer", "subject_id": issuer_id, "content": "x"}, None),
            ("GET", f"{base}/backlinks", None, {"ref_type": "issuer", "ref_id": issuer_id}),
            ("GET", f"{base}/count", None, {"subject_type": "issuer", "subject_id": issuer_id}),
            ("GET", f"{base}/{note.id}", None, None),
            ("PATCH", f"{base}/{note.id}", {"content": "x"}, None),
            ("DELETE", f"{base}/{note.id}", None, None),
        ]:
            resp = await client.request(method, path, json=body, params=params, auth=other_account.basic)
            assert resp.status_code == 404, (method, path, resp.text)
        # Under its own account path, the other tenant sees none of it.
        own = notes_path(other_account.account_id)
        for path, params in [(f"{own}/{note.id}", None),
                             (f"{own}/backlinks", {"ref_type": "issuer", "ref_id": issuer_id})]:
            resp = await client.get(path, params=params, auth=other_account.basic)
            assert resp.status_code == 404 or resp.json()["data"] == [], resp.text
        assert await admin.notes.get(note.id) == note


class TestNoteScopes:
    async def test_read_scope_cannot_write(self, admin: AuthPIAdmin, client: httpx.AsyncClient,
                                           account: AccountCredentials, issuer_id: str):
        key = await admin.api_keys.create({"name": "ro", "restrictions": {"scopes": ["notes:read"]}})
        basic = (key.id, key.secret_plain)
        base = notes_path(account.account_id)
        assert (await client.get(base, auth=basic)).status_code == 200
        body = {"subject_type": "issuer", "subject_id": issuer_id, "content": "x"}
        resp = await client.post(base, json=body, auth=basic)
        assert resp.status_code == 403
