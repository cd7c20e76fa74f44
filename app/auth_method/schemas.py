"""Auth-method bodies and the (open) `IssuerAuthMethod` shape (§2.14).

The SDK fixes no shape, so this server's is: `{id, issuer_id, type, name, enabled, settings,
metadata, created_at, updated_at}`. An upstream IdP's `settings.client_secret` is accepted on
create/update, stored encrypted and never returned: responses show `client_secret_set` instead.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import StrictBool

from app.core.validation import JsonObject, Metadata, Name, StrictModel
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


def auth_method_to_api(m: IssuerAuthMethod) -> dict[str, Any]:
    settings = dict(m.settings)
    if m.type in PROVIDER_TYPES:
        settings[f"{SECRET_SETTING}_set"] = m.secret_encrypted is not None
    return {
        "id": m.id,
        "issuer_id": m.issuer_id,
        "type": m.type,
        "name": m.name,
        "enabled": m.enabled,
        "settings": settings,
        "metadata": m.metadata_,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    }
