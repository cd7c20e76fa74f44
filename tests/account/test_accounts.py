"""Accounts through the official SDK: list, get, update, ETags and isolation."""

from __future__ import annotations

import pytest
from authpi_admin import AuthPIAdmin
from authpi_admin.errors import NotFoundError, PreconditionFailedError, ValidationError

from tests.conftest import AccountCredentials


class TestGetAccount:
    async def test_returns_the_callers_account(self, admin: AuthPIAdmin, account: AccountCredentials):
        got = await admin.accounts.get(account.account_id)
        assert got.id == account.account_id
        assert got.organization.id.startswith("org_")
        assert got._etag == f'"{got.updated_at or got.created_at}"'

    async def test_another_accounts_id_is_not_found(self, admin: AuthPIAdmin,
                                                     other_account: AccountCredentials):
        with pytest.raises(NotFoundError):
            await admin.accounts.get(other_account.account_id)


class TestListAccounts:
    async def test_lists_only_the_callers_account(self, admin: AuthPIAdmin, account: AccountCredentials,
                                                  other_account: AccountCredentials):
        page = await admin.accounts.list()
        assert [a.id for a in page.data] == [account.account_id]


class TestUpdateAccount:
    async def test_updates_and_records_event(self, admin: AuthPIAdmin, account: AccountCredentials):
        updated = await admin.accounts.update(account.account_id, {"name": "Acme Inc", "metadata": {"t": 1}})
        assert updated.metadata.model_dump() == {"t": 1}
        page = await admin.events.list(event_types="account.updated")
        assert [e.type for e in page.data] == ["account.updated"]

    async def test_stale_if_match_is_412_with_current_etag(self, admin: AuthPIAdmin,
                                                            account: AccountCredentials):
        current = await admin.accounts.get(account.account_id)
        with pytest.raises(PreconditionFailedError) as err:
            await admin.accounts.update(account.account_id, {"name": "x"}, if_match='"1"')
        assert err.value.current_etag == current._etag

    async def test_unknown_field_is_422_with_fields(self, admin: AuthPIAdmin, account: AccountCredentials):
        with pytest.raises(ValidationError) as err:
            await admin.accounts.update(account.account_id, {"nam": "typo"})
        assert [f["field"] for f in err.value.fields] == ["nam"]

    async def test_other_account_cannot_update(self, other_admin: AuthPIAdmin, account: AccountCredentials):
        with pytest.raises(NotFoundError):
            await other_admin.accounts.update(account.account_id, {"name": "stolen"})
