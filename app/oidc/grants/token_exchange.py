"""Token exchange (RFC 8693): an agent acting for a user.

The caller is an agent, authenticated with one of its secret verifiers (its `agt_` id as
`client_id`). It presents a user's live access token of this issuer as the `subject_token` and gets
a delegated access token: `sub` is the user, `act: {"sub": "agt_..."}` names the agent (a nested
`act`, when the subject token was itself delegated, is kept below it: RFC 8693 §4.1), and the
scopes are the intersection of the user's (the subject token's `scope`), the agent's and those asked
for. Asking for more than that intersection is `invalid_scope`; nothing is written on any refusal.

The delegated token carries the subject token's `gid`, so revoking the user's grant (or the token
family) kills it, and its `client_id` is the agent, so suspending or deleting the agent kills it
too (app.oidc.verify). It lives at most as long as the subject token and the agents' 5 minutes.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request

from app.oidc import tokens
from app.oidc.client_auth import authenticate_agent_client
from app.oidc.errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget
from app.oidc.events import metered
from app.oidc.grants.client_credentials import AGENT_TOKEN_TTL, OIDC_ONLY
from app.oidc.grants.common import Form, requested_scopes
from app.oidc.tokens import TokenInvalid
from app.oidc.verify import verify_access_token
from app.signing_key.cache import KeySet

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
MAX_ACT_DEPTH = 8  # a chain of delegations deeper than this is refused
# Claims of the subject token carried into the delegated one (the user's identity and context).
_CARRIED = ("auth_time", "acr", "amr", "sid", "org_id", "gid")


def _act_depth(act: Any) -> int:
    depth = 0
    while isinstance(act, dict):
        depth += 1
        act = act.get("act")
    return depth


def _check_form(form: Form) -> str:
    subject_token = form.get("subject_token")
    if not subject_token:
        raise InvalidRequest("subject_token is required")
    if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
        raise InvalidRequest(f"subject_token_type must be {ACCESS_TOKEN_TYPE}")
    if form.get("requested_token_type") not in (None, ACCESS_TOKEN_TYPE):
        raise InvalidRequest(f"Only {ACCESS_TOKEN_TYPE} can be requested")
    if form.get("actor_token") or form.get("actor_token_type"):
        raise InvalidRequest("actor_token is not supported: the authenticated agent is the actor")
    if form.get("audience") or form.getlist("resource"):
        raise InvalidTarget("audience and resource are not supported for token exchange")
    if len(subject_token) > 8192:
        raise InvalidGrant("The subject token is invalid")
    return subject_token


def _orgs(claims: dict[str, Any], scopes: set[str]) -> list[dict[str, Any]]:
    """The user's organizations, each membership's scopes narrowed to the delegated ones."""
    out = []
    for org in claims.get("organizations") or []:
        if isinstance(org, dict):
            out.append({**org, "scopes": [s for s in org.get("scopes") or [] if s in scopes]})
    return out


async def exchange(request: Request, keys: KeySet, creds: tuple[str, str | None, bool],
                   form: Form) -> dict[str, Any]:
    """The token response for an agent's exchange, with its `machine.token.issued` event."""
    subject_token = _check_form(form)
    agent = await authenticate_agent_client(request, keys.issuer_id, keys.account_id, creds)
    try:
        _, subject = await verify_access_token(request.app, subject_token, keys.issuer_id)
    except TokenInvalid as exc:
        raise InvalidGrant("The subject token is invalid, expired or revoked") from exc
    user_id = subject.get("sub")
    if not isinstance(user_id, str) or not user_id.startswith("usr_"):
        raise InvalidGrant("The subject token must be a user's access token")
    previous_act = subject.get("act")
    if _act_depth(previous_act) >= MAX_ACT_DEPTH:
        raise InvalidGrant("The delegation chain is too long")
    user_scopes = [s for s in str(subject.get("scope", "")).split() if s not in OIDC_ONLY]
    agent_scopes = set(agent.scopes)
    allowed = [s for s in user_scopes if s in agent_scopes]
    requested = requested_scopes(form)
    if requested is not None:
        extra = [s for s in requested if s not in allowed]
        if extra:
            raise InvalidScope(f"Scopes beyond the user's and the agent's: {' '.join(extra)}")
        allowed = [s for s in allowed if s in requested]
    if not allowed:
        raise InvalidScope("The user and the agent have no scope in common")
    now = int(time.time())
    exp = min(int(subject["exp"]), now + AGENT_TOKEN_TTL)
    act: dict[str, Any] = {"sub": agent.agent_id}
    if isinstance(previous_act, dict):
        act["act"] = previous_act
    scope = " ".join(allowed)
    claims: dict[str, Any] = {
        "iss": keys.issuer_url, "sub": user_id, "aud": agent.agent_id, "client_id": agent.agent_id,
        "iat": now, "exp": exp, "jti": tokens.new_jti(), "scope": scope, "act": act,
        "dat": {"type": "delegated"},
    }
    claims.update({k: subject[k] for k in _CARRIED if k in subject})
    if "organizations" in subject:
        claims["organizations"] = _orgs(subject, set(allowed))
    body = {"access_token": tokens.sign_access_token(keys, claims),
            "issued_token_type": ACCESS_TOKEN_TYPE, "token_type": "Bearer",
            "expires_in": max(0, exp - now), "scope": scope}
    metered(request.app, type="machine.token.issued", account_id=keys.account_id,
            issuer_id=keys.issuer_id, client_id=agent.agent_id, user_id=user_id,
            subject={"type": "user", "id": user_id},
            auth={"type": "agent", "agent_id": agent.agent_id},
            data={"jti": claims["jti"], "scope": scope, "exp": exp, "grant_type": GRANT_TYPE,
                  "act": act, "subject_jti": subject.get("jti")})
    return body
