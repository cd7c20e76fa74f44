"""Signing key rotation: new keys sign, old keys stay published, old tokens still verify."""

from __future__ import annotations

import httpx
from authpi_admin import AuthPIAdmin

from tests.conftest import AccountCredentials
from tests.oidc.helpers import code_tokens, make_setup


class TestRotateSigningKeys:
    async def test_rotation_keeps_old_keys_published(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                                     account: AccountCredentials) -> None:
        setup = await make_setup(admin)
        before = (await client.get(f"/{setup.issuer_id}/jwks.json")).json()["keys"]
        tokens = await code_tokens(client, setup)
        path = f"/v1/accounts/{account.account_id}/issuers/{setup.issuer_id}/signing-keys/rotate"
        r = await client.post(path, auth=account.basic)
        assert r.status_code == 200
        new_kids = {k["kid"] for k in r.json()["data"]["signing_keys"]}
        after = (await client.get(f"/{setup.issuer_id}/jwks.json")).json()["keys"]
        assert {k["kid"] for k in before} | new_kids == {k["kid"] for k in after}
        # Old tokens still verify; new ones are signed with the new keys.
        ui = await client.get(f"/{setup.issuer_id}/userinfo",
                              headers={"authorization": f"Bearer {tokens['access_token']}"})
        assert ui.status_code == 200
        fresh = await code_tokens(client, setup)
        import json
        from base64 import urlsafe_b64decode
        kid = json.loads(urlsafe_b64decode(fresh["id_token"].split(".")[0] + "=="))["kid"]
        assert kid in new_kids
        assert (await admin.events.list(event_types="issuer.signing-key.rotated")).data

    async def test_other_account_cannot_rotate(self, client: httpx.AsyncClient, admin: AuthPIAdmin,
                                               other_account: AccountCredentials) -> None:
        issuer = await admin.issuers.create({"name": "x"})
        path = f"/v1/accounts/{other_account.account_id}/issuers/{issuer.id}/signing-keys/rotate"
        r = await client.post(path, auth=other_account.basic)
        assert r.status_code == 404


class TestAdminIntrospect:
    async def test_sdk_introspect(self, client: httpx.AsyncClient, admin: AuthPIAdmin, other_admin) -> None:
        setup = await make_setup(admin)
        tokens = await code_tokens(client, setup)
        result = await admin.issuer(setup.issuer_id).tokens.introspect({"token": tokens["access_token"]})
        assert result["active"] is True
        assert result["sub"] == setup.user_id
        refresh = await admin.issuer(setup.issuer_id).tokens.introspect({"token": tokens["refresh_token"]})
        assert refresh["active"] is True
        assert (await admin.issuer(setup.issuer_id).tokens.introspect({"token": "nope"}))["active"] is False
        import pytest
        from authpi_admin.errors import NotFoundError
        with pytest.raises(NotFoundError):
            await other_admin.issuer(setup.issuer_id).tokens.introspect({"token": tokens["access_token"]})


class TestAdminIntrospectPersonalToken:
    async def test_personal_token(self, admin: AuthPIAdmin) -> None:
        setup = await make_setup(admin)
        created = await admin.issuer(setup.issuer_id).user(setup.user_id).tokens.create(
            {"name": "ci", "scopes": ["invoices:read"]})
        result = await admin.issuer(setup.issuer_id).tokens.introspect({"token": created.token_plain})
        assert result["active"] is True
        assert result["token_type"] == "personal_token"
        assert result["sub"] == setup.user_id
        other = await admin.issuers.create({"name": "other"})
        elsewhere = await admin.issuer(other.id).tokens.introspect({"token": created.token_plain})
        assert elsewhere["active"] is False
