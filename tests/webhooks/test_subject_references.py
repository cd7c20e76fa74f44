"""A webhook's subject filters must name ids of the same account (issue 9: referenced ids are
checked to exist in the same tenant)."""

from __future__ import annotations

import asyncpg
import httpx
from authpi_admin import AuthPIAdmin
from authpi_admin.generated.models import ApiError as ApiErrorBody

from tests.conftest import AccountCredentials, count_rows


def body(subjects: list[dict[str, str]]) -> dict[str, object]:
    return {"name": "hook", "url": "http://127.0.0.1:9/hook", "auth": {"type": "signature"},
            "events": ["user.created"], "subjects": subjects}


class TestSubjectReferences:
    async def test_another_accounts_or_unknown_ids_are_refused(
            self, client: httpx.AsyncClient, account: AccountCredentials, other_admin: AuthPIAdmin,
            admin: AuthPIAdmin, pg: asyncpg.Pool) -> None:
        theirs = (await other_admin.issuers.create({"name": "theirs"})).id
        their_org = (await other_admin.issuer(theirs).organizations.create({"name": "o"})).id
        mine = (await admin.issuers.create({"name": "mine"})).id
        path = f"/v1/accounts/{account.account_id}/webhooks"
        before = await count_rows(pg, "webhooks", account.account_id)
        for subjects in ([{"issuer_id": theirs}], [{"org_id": their_org}], [{"user_id": "usr_nobody"}],
                         [{"issuer_id": mine}, {"issuer_id": "i_unknown"}]):
            r = await client.post(path, auth=account.basic, json=body(subjects))
            assert r.status_code == 422, (subjects, r.text)
            assert ApiErrorBody.model_validate(r.json()).fields[0].field.startswith("subjects.")
        assert await count_rows(pg, "webhooks", account.account_id) == before
        ok = await client.post(path, auth=account.basic, json=body([{"issuer_id": mine}]))
        assert ok.status_code == 201, ok.text
        hook_id = ok.json()["data"]["id"]
        r = await client.patch(f"{path}/{hook_id}", auth=account.basic,
                               json={"subjects": [{"issuer_id": theirs}]})
        assert r.status_code == 422, r.text
        got = await client.get(f"{path}/{hook_id}", auth=account.basic)
        assert got.json()["data"]["subjects"] == [{"issuer_id": mine}]

