"""Issuer-limited account keys (`restrictions.issuer_ids`): a delegated admin of some issuers, through
the official SDK. Another issuer of the account is a 404 as another tenant's is; account-level
resources are refused (403) or filtered to its issuers; a limited key never mints a broader key."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import ForbiddenError, NotFoundError, ValidationError
from authpi_admin.generated.resources.usage import UsageResource
from fastapi import FastAPI

from tests.api_key.conftest import sdk_for
from tests.conftest import AccountCredentials, count_rows

ADMIN_SCOPES = ["issuers:**", "api_keys:**", "webhooks:**", "events:**", "accounts:**", "usage:**",
                "domains:**"]


@dataclass
class Delegation:
    mine: str  # the issuer the key administers
    other: str  # another issuer of the same account
    key_id: str
    secret: str


@pytest.fixture
async def delegation(admin: AuthPIAdmin) -> Delegation:
    mine = await admin.issuers.create({"name": "team-a"})
    other = await admin.issuers.create({"name": "team-b"})
    key = await admin.api_keys.create({"name": "team-a admin", "restrictions": {
        "scopes": ADMIN_SCOPES, "issuer_ids": [mine.id]}})
    assert key.restrictions == {"scopes": ADMIN_SCOPES, "issuer_ids": [mine.id]}
    return Delegation(mine.id, other.id, key.id, key.secret_plain)


async def mutation_events(pg: asyncpg.Pool, account_id: str) -> int:
    return await count_rows(pg, "events", account_id)


class TestValidation:
    async def test_issuer_ids_must_be_issuers_of_the_account(
            self, admin: AuthPIAdmin, other_admin: AuthPIAdmin, account: AccountCredentials,
            pg: asyncpg.Pool):
        foreign = await other_admin.issuers.create({"name": "theirs"})
        before = await count_rows(pg, "api_keys", account.account_id)
        for ids in ([foreign.id], ["i_doesnotexist"], []):
            with pytest.raises(ValidationError) as err:
                await admin.api_keys.create({"name": "x", "restrictions": {"scopes": [], "issuer_ids": ids}})
            assert err.value.fields[0]["field"].startswith("restrictions.issuer_ids")
        assert await count_rows(pg, "api_keys", account.account_id) == before

    async def test_organization_keys_take_no_issuer_ids(self, admin: AuthPIAdmin, delegation: Delegation):
        org = await admin.issuer(delegation.mine).organizations.create({"name": "Globex"})
        with pytest.raises(ValidationError) as err:
            await admin.issuer(delegation.mine).organization(org.id).api_keys.create(
                {"type": "api_key", "name": "k",
                 "restrictions": {"scopes": [], "issuer_ids": [delegation.mine]}})
        assert err.value.fields[0]["field"] == "restrictions.issuer_ids"

    async def test_whoami_and_the_key_show_the_limit(self, app: FastAPI, admin: AuthPIAdmin,
                                                    delegation: Delegation):
        async with sdk_for(app, (delegation.key_id, delegation.secret)) as limited:
            who = await limited.whoami()
        assert who["accounts"][0]["issuer_ids"] == [delegation.mine]
        assert (await admin.api_keys.get(delegation.key_id)).restrictions["issuer_ids"] == [delegation.mine]


class TestOwnIssuer:
    async def test_works_on_its_issuer(self, app: FastAPI, delegation: Delegation):
        async with sdk_for(app, (delegation.key_id, delegation.secret)) as limited:
            scope = limited.issuer(delegation.mine)
            assert (await scope.get()).id == delegation.mine
            org = await scope.organizations.create({"name": "Globex"})
            user = await scope.users.create({"username": "ada@example.com", "username_type": "email"})
            client = await scope.clients.create({"name": "svc", "settings": {"openid": {
                "application_type": "service", "grant_types": ["client_credentials"]}}})
            assert [o.id for o in (await scope.organizations.list()).data] == [org.id]
            assert [u.user_id for u in (await scope.users.list()).data] == [user.id]
            assert client.id
            updated = await limited.issuers.update(delegation.mine, {"description": "team A"})
            assert updated.description == "team A"
            key = await scope.organization(org.id).api_keys.create(
                {"type": "api_key", "name": "k", "restrictions": {"scopes": []}})
            # Its organization keys are within its issuer: it manages them like an unlimited key.
            assert (await limited.api_keys.block(key.id)).status == "blocked"

    async def test_issuers_list_shows_only_its_issuers(self, app: FastAPI, admin: AuthPIAdmin,
                                                       delegation: Delegation):
        assert {i.id for i in (await admin.issuers.list()).data} >= {delegation.mine, delegation.other}
        async with sdk_for(app, (delegation.key_id, delegation.secret)) as limited:
            assert [i.id for i in (await limited.issuers.list()).data] == [delegation.mine]
            assert [i.id for i in (await limited.issuers.list(q=delegation.other)).data] == []

    async def test_deleting_its_issuer_follows_its_scopes(self, app: FastAPI, admin: AuthPIAdmin,
                                                          delegation: Delegation):
        reader = await admin.api_keys.create({"name": "reader", "restrictions": {
            "scopes": ["issuers:read"], "issuer_ids": [delegation.mine]}})
        async with sdk_for(app, (reader.id, reader.secret_plain)) as limited:
            with pytest.raises(ForbiddenError):
                await limited.issuers.delete(delegation.mine)
        async with sdk_for(app, (delegation.key_id, delegation.secret)) as limited:
            await limited.issuers.delete(delegation.mine)
        assert delegation.mine not in {i.id for i in (await admin.issuers.list()).data}


class TestAnotherIssuer:
    async def test_reads_and_writes_are_404_and_change_nothing(
            self, app: FastAPI, admin: AuthPIAdmin, delegation: Delegation, account: AccountCredentials,
            pg: asyncpg.Pool):
        theirs = admin.issuer(delegation.other)
        org = await theirs.organizations.create({"name": "Initech"})
        user = await theirs.users.create({"username": "bob@example.com", "username_type": "email"})
        tables = ("issuers", "organizations", "users", "clients", "api_keys", "events")
        before = {t: await count_rows(pg, t, account.account_id) for t in tables}
        async with sdk_for(app, (delegation.key_id, delegation.secret)) as limited:
            scope = limited.issuer(delegation.other)
            attempts = [
                scope.get(),
                scope.organizations.list(),
                scope.organization(org.id).get(),
                scope.user(user.id).get(),
                scope.users.list(),
                scope.clients.list(),
                limited.issuers.update(delegation.other, {"description": "mine now"}),
                limited.issuers.delete(delegation.other),
                scope.organizations.create({"name": "Hooli"}),
                scope.users.create({"username": "eve@example.com", "username_type": "email"}),
                scope.organization(org.id).update({"name": "Renamed"}),
                scope.user(user.id).delete(),
                scope.organization(org.id).api_keys.create(
                    {"type": "api_key", "name": "k", "restrictions": {"scopes": []}}),
            ]
            for attempt in attempts:
                with pytest.raises(NotFoundError):
                    await attempt
        assert {t: await count_rows(pg, t, account.account_id) for t in tables} == before
        assert (await theirs.get()).description is None
        assert (await theirs.organization(org.id).get()).name == "Initech"

    async def test_another_issuers_organization_key_is_404(self, app: FastAPI, admin: AuthPIAdmin,
                                                           delegation: Delegation):
        org = await admin.issuer(delegation.other).organizations.create({"name": "Initech"})
        key = await admin.issuer(delegation.other).organization(org.id).api_keys.create(
            {"type": "api_key", "name": "k", "restrictions": {"scopes": []}})
        async with sdk_for(app, (delegation.key_id, delegation.secret)) as limited:
            for attempt in (limited.api_keys.get(key.id), limited.api_keys.block(key.id),
                            limited.api_keys.delete(key.id)):
                with pytest.raises(NotFoundError):
                    await attempt
        assert (await admin.api_keys.get(key.id)).status == "active"


class TestAccountLevel:
    async def test_account_wide_resources_are_refused(self, app: FastAPI, delegation: Delegation,
                                                      account: AccountCredentials, pg: asyncpg.Pool):
        before = {t: await count_rows(pg, t, account.account_id) for t in ("issuers", "webhooks", "events")}
        async with sdk_for(app, (delegation.key_id, delegation.secret)) as limited:
            usage = UsageResource(limited.http, f"/v1/accounts/{account.account_id}/usage")
            attempts = [
                lambda: limited.issuers.create({"name": "mine-too"}),
                lambda: limited.webhooks.list(),
                lambda: limited.webhooks.create({"name": "w", "url": "https://hooks.example/x",
                                                 "auth": {"type": "signature"}, "events": ["user.created"]}),
                lambda: limited.events.list(),
                lambda: limited.domains.list(),
                lambda: usage.list(period="2026-12"),
                lambda: limited.accounts.get(account.account_id),
                lambda: limited.accounts.list(),
            ]
            for attempt in attempts:
                with pytest.raises(ForbiddenError):
                    await attempt()
        assert {t: await count_rows(pg, t, account.account_id)
                for t in ("issuers", "webhooks", "events")} == before


class TestNoEscalation:
    async def test_keys_it_creates_stay_within_its_issuers(
            self, app: FastAPI, admin: AuthPIAdmin, delegation: Delegation, account: AccountCredentials,
            pg: asyncpg.Pool):
        before = await count_rows(pg, "api_keys", account.account_id)
        async with sdk_for(app, (delegation.key_id, delegation.secret)) as limited:
            refused = [
                {"scopes": ["issuers:read"]},  # a whole-account key
                {"scopes": ["issuers:read"], "issuer_ids": [delegation.other]},
                {"scopes": ["issuers:read"], "issuer_ids": [delegation.mine, delegation.other]},
                {"scopes": ["*:**"], "issuer_ids": [delegation.mine]},  # scopes beyond its own
            ]
            for restrictions in refused:
                with pytest.raises(ValidationError):
                    await limited.api_keys.create({"name": "x", "restrictions": restrictions})
            # Nor by widening itself.
            with pytest.raises(ValidationError):
                await limited.api_keys.update(delegation.key_id, {"restrictions": {"scopes": ADMIN_SCOPES}})
            assert await count_rows(pg, "api_keys", account.account_id) == before
            ok = await limited.api_keys.create({"name": "ci", "restrictions": {
                "scopes": ["issuers.users:read"], "issuer_ids": [delegation.mine]}})
            # It lists only the keys within its issuers, and cannot see the whole-account ones.
            assert {k.id for k in (await limited.api_keys.list()).data} == {delegation.key_id, ok.id}
            with pytest.raises(NotFoundError):
                await limited.api_keys.get(account.key_id)
            with pytest.raises(NotFoundError):
                await limited.api_keys.revoke(account.key_id)
        assert (await admin.api_keys.get(account.key_id)).status == "active"
        async with sdk_for(app, (ok.id, ok.secret_plain)) as child:
            assert [u.user_id for u in (await child.issuer(delegation.mine).users.list()).data] == []
            with pytest.raises(NotFoundError):
                await child.issuer(delegation.other).users.list()


class TestRestrictionChanges:
    async def test_take_effect_on_the_next_request(self, app: FastAPI, admin: AuthPIAdmin,
                                                   delegation: Delegation):
        async with sdk_for(app, (delegation.key_id, delegation.secret)) as limited:
            # Warm the verification cache with the limited principal.
            assert [i.id for i in (await limited.issuers.list()).data] == [delegation.mine]
            await admin.api_keys.update(delegation.key_id, {"restrictions": {
                "scopes": ADMIN_SCOPES, "issuer_ids": [delegation.other]}})
            assert [i.id for i in (await limited.issuers.list()).data] == [delegation.other]
            with pytest.raises(NotFoundError):
                await limited.issuer(delegation.mine).get()
            # Lifting the limit makes it a whole-account key again.
            await admin.api_keys.update(delegation.key_id, {"restrictions": {"scopes": ADMIN_SCOPES}})
            assert {i.id for i in (await limited.issuers.list()).data} >= {delegation.mine, delegation.other}
            assert (await limited.webhooks.list()).data == []
