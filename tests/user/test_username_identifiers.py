"""Usernames are PRECIS identifiers and look-alikes of an existing user are refused (issue 9, item 5);
a referenced owner must be a user of the same account."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.generated.models import ApiError as ApiErrorBody
from authpi_admin.generated.models import User as UserModel

from tests.conftest import AccountCredentials, count_rows


def users_path(account: AccountCredentials, issuer_id: str) -> str:
    return f"/v1/accounts/{account.account_id}/issuers/{issuer_id}/users"


@pytest.fixture
async def issuer(admin: AuthPIAdmin) -> str:
    return (await admin.issuers.create({"name": "precis"})).id


async def create(client: httpx.AsyncClient, account: AccountCredentials, issuer_id: str, username: str,
                 kind: str = "username") -> httpx.Response:
    return await client.post(users_path(account, issuer_id), auth=account.basic,
                             json={"username_type": kind, "username": username})


class TestLookAlikes:
    @pytest.mark.parametrize(("existing", "lookalike"), [
        ("adam", "аdam"),           # a Cyrillic а among Latin letters (mixed script)
        ("asap", "аѕар"),           # all Cyrillic, the same skeleton
        ("adam", "Ａｄａｍ"),       # fullwidth letters
        ("adam", "ad\u200bam"),     # zero-width space
        ("adam", "ad\u00adam"),     # soft hyphen
        ("rené", "rene\u0301"),     # combining acute vs precomposed é
        ("adam", "ADAM"),           # case
        ("ada@globex.example", "аda@globex.example"),
    ], ids=["cyrillic-a", "whole-cyrillic", "fullwidth", "zero-width", "soft-hyphen", "combining",
            "case", "email-cyrillic"])
    async def test_refused_and_nothing_created(self, client: httpx.AsyncClient, account: AccountCredentials,
                                               issuer: str, pg: asyncpg.Pool, existing: str,
                                               lookalike: str) -> None:
        kind = "email" if "@" in existing else "username"
        first = await create(client, account, issuer, existing, kind)
        assert first.status_code == 201, first.text
        before = (await count_rows(pg, "users", account.account_id),
                  await count_rows(pg, "events", account.account_id))
        r = await create(client, account, issuer, lookalike, kind)
        assert r.status_code in (409, 422), (r.status_code, r.text)
        ApiErrorBody.model_validate(r.json())
        assert (await count_rows(pg, "users", account.account_id),
                await count_rows(pg, "events", account.account_id)) == before

    async def test_rename_onto_a_lookalike_is_refused(self, client: httpx.AsyncClient,
                                                      account: AccountCredentials, issuer: str) -> None:
        assert (await create(client, account, issuer, "asap")).status_code == 201
        other = await create(client, account, issuer, "bob")
        r = await client.patch(f"{users_path(account, issuer)}/{other.json()['data']['id']}",
                               auth=account.basic, json={"username": "аѕар"})
        assert r.status_code == 409, r.text

    async def test_the_same_name_in_another_issuer_is_fine(self, client: httpx.AsyncClient,
                                                           admin: AuthPIAdmin, account: AccountCredentials,
                                                           issuer: str) -> None:
        second = (await admin.issuers.create({"name": "precis-2"})).id
        assert (await create(client, account, issuer, "adam")).status_code == 201
        assert (await create(client, account, second, "adam")).status_code == 201


class TestPrecisForms:
    async def test_fullwidth_is_stored_width_mapped_and_signs_in_by_any_form(
            self, client: httpx.AsyncClient, account: AccountCredentials, issuer: str) -> None:
        r = await create(client, account, issuer, "Ｇｒａｃｅ")
        assert r.status_code == 201, r.text
        user = UserModel.model_validate(r.json()["data"])
        assert user.username == "Grace"

    async def test_combining_form_is_stored_composed(self, client: httpx.AsyncClient,
                                                     account: AccountCredentials, issuer: str) -> None:
        r = await create(client, account, issuer, "Rene\u0301")
        assert r.status_code == 201, r.text
        assert r.json()["data"]["username"] == "René"


class TestOwnerReference:
    async def test_owner_must_be_a_user_of_the_account(
            self, client: httpx.AsyncClient, account: AccountCredentials, other_account: AccountCredentials,
            issuer: str, admin: AuthPIAdmin, other_admin: AuthPIAdmin) -> None:
        path = f"/v1/accounts/{account.account_id}"
        other_issuer = (await other_admin.issuers.create({"name": "theirs"})).id
        theirs = await create(client, other_account, other_issuer, "mallory")
        assert theirs.status_code == 201
        for bogus in ("anything", "usr_01JZZZZZZZZZZZZZZZZZZZZZZZ", theirs.json()["data"]["id"]):
            r = await client.patch(path, auth=account.basic, json={"owner_user_id": bogus})
            assert r.status_code == 422, (bogus, r.text)
            assert ApiErrorBody.model_validate(r.json()).fields[0].field == "owner_user_id"
        assert "owner_user_id" not in (await client.get(path, auth=account.basic)).json()["data"]
        mine = await create(client, account, issuer, "owner")
        r = await client.patch(path, auth=account.basic, json={"owner_user_id": mine.json()["data"]["id"]})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["owner_user_id"] == mine.json()["data"]["id"]
