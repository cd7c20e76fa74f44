"""Auth-method bodies and the (open) `IssuerAuthMethod` shape (§2.14).

The SDK fixes no shape, so this server's is: `{id, issuer_id, type, name, enabled, settings,
metadata, created_at, updated_at}`. An upstream IdP's `settings.client_secret` is accepted on
create/update, stored encrypted and never returned: responses show `client_secret_set` instead, and
the read-only `settings.redirect_uri` to register at the upstream.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, StrictBool

from app.core.responses import JsonDict, ResponseModel, with_fields
from app.core.validation import JsonObject, Metadata, Name, StrictModel
from app.identity.providers import RUNNABLE_TYPES, redirect_uri
from app.models.auth_method import IssuerAuthMethod

# First-party methods exist at most once per issuer; upstream identity providers may repeat
# (two OIDC providers, say), told apart by name.
SINGLETON_TYPES = ("password", "email_otp", "sms_otp", "magic_link", "passkey", "totp")
PROVIDER_TYPES = ("oidc", "saml", "google", "github", "microsoft", "apple")
AuthMethodType = Literal["password", "email_otp", "sms_otp", "magic_link", "passkey", "totp",
                         "oidc", "saml", "google", "github", "microsoft", "apple"]
SECRET_SETTING = "client_secret"


class AuthMethodCreate(StrictModel):
    type: AuthMethodType
    name: Name | None = None
    enabled: StrictBool = True
    settings: JsonObject | None = None
    metadata: Metadata | None = None


class AuthMethodUpdate(StrictModel):
    # The type is fixed at creation: a different type is a different method.
    name: Name | None = None
    enabled: StrictBool | None = None
    settings: JsonObject | None = None
    metadata: Metadata | None = None


class AuthMethodOut(ResponseModel):
    """`settings` never carries the provider secret, only whether one is set."""

    id: str
    issuer_id: str
    type: str
    name: str | None
    enabled: bool
    settings: JsonDict
    metadata: JsonDict = Field(validation_alias="metadata_")
    created_at: int
    updated_at: int | None

    @classmethod
    def of(cls, row: IssuerAuthMethod, public_url: str) -> Self:
        settings = dict(row.settings or {})
        if row.type in PROVIDER_TYPES:
            settings[f"{SECRET_SETTING}_set"] = row.secret_encrypted is not None
        if row.type in RUNNABLE_TYPES:
            # Read-only: what to register at the upstream as the redirect URI.
            settings["redirect_uri"] = redirect_uri(public_url, row.issuer_id, row.id)
        return cls.model_validate(with_fields(row, settings=settings))
