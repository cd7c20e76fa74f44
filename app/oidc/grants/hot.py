"""refresh_token rotation and authorization_code redemption in one statement each.

The ORM path (refresh_token.py, authorization_code.py) took about nine round trips per request:
BEGIN, the locked token and grant, the user and session, the memberships, the groups, the flush
(token marked, new token, session touched, event), COMMIT. Here one statement, sent on a plain
asyncpg pool of its own (`AUTHPI_TOKEN_POOL_SIZE`, no reset query on release), consumes the
presented token or code only when everything needed for success holds, writes what success writes
(the new refresh token, the grant, the sign-in session's counters and, for a refresh, the
deliverable `session.token-refreshed` event, all in that statement's transaction) and returns what
the tokens need. A single statement is its own transaction.

When it consumes nothing (unknown, reused, expired or revoked token; inactive user; ended session;
a membership gone; a scope or resource outside the grant; PKCE or redirect mismatch) the caller runs
the ORM path, which decides the exact error and does what a failure does (family revocation on
reuse, `session.compromised`, the code marked used). The two cannot disagree on success: a
concurrent presentation of the same token waits on this statement's row lock, re-reads the row,
finds it consumed, and falls through to the reuse handling, as with the ORM path's FOR UPDATE.

The tokens are signed after the commit (their claims come from the statement's answer); a crash in
between loses that response, as a response lost in transit would.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import orjson

from app.core.db import to_asyncpg_dsn
from app.core.ids import new_id, now_ms
from app.events.batcher import event_row
from app.membership.service import build_organizations_claim
from app.observability.context import current_request_id
from app.oidc import pkce, tokens
from app.oidc.claims import UserView
from app.oidc.client_auth import CachedClient
from app.oidc.grants.common import (
    Form,
    GrantView,
    IssueContext,
    grant_jkt,
    mint_user_tokens,
    narrow_scopes,
    new_refresh_token,
    refresh_ttl_ms,
    requested_scopes,
)
from app.signing_key.cache import KeySet

# The user's active memberships (claim order) and the scopes of their groups, as JSON, for
# membership.service.build_organizations_claim; `$5` is the account, `$4` the issuer.
_ORGS = """
  (SELECT coalesce(jsonb_agg(jsonb_build_array(m.org_id, o.name, m.scopes, m.groups, m.joined_at)
                             ORDER BY m.joined_at, m.id), '[]'::jsonb)
     FROM memberships m JOIN organizations o ON o.id = m.org_id
    WHERE m.account_id = $5 AND m.issuer_id = $4 AND m.member_id = u.id AND m.status = 'active'
      AND o.account_id = $5 AND o.status = 'active') AS memberships,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(gr.id, gr.org_id, gr.scopes)), '[]'::jsonb)
     FROM groups gr
    WHERE gr.account_id = $5 AND gr.id IN (
      SELECT jsonb_array_elements_text(m.groups)
        FROM memberships m JOIN organizations o ON o.id = m.org_id
       WHERE m.account_id = $5 AND m.issuer_id = $4 AND m.member_id = u.id AND m.status = 'active'
         AND o.account_id = $5 AND o.status = 'active')) AS groups
"""

# The selected organization (if any) still has the user as an active member. A lateral lookup by
# (member, organization): an EXISTS under OR may be planned as a hash of every membership of the
# account, which grows with the tenant.
_MEMBER_OF = """
  LEFT JOIN LATERAL (
    SELECT true AS ok FROM memberships m JOIN organizations o ON o.id = m.org_id
     WHERE m.member_id = {user} AND m.org_id = {org} AND m.account_id = $5 AND m.issuer_id = $4
       AND m.status = 'active' AND o.account_id = $5 AND o.status = 'active'
     LIMIT 1) member ON true
"""

_USER_COLUMNS = "u.id AS user_id, u.username, u.username_type, u.profile, u.security, " \
                "u.created_at AS user_created_at, u.updated_at AS user_updated_at"

# Every lookup starts from the presented token's unique HMAC (a MATERIALIZED CTE, so the planner
# never drives it from a tenant-wide index) and follows primary keys from there.
# $1 token HMAC, $2 now (ms), $3 client, $4 issuer, $5 account, $6/$7 new token id/HMAC,
# $8 its lifetime (ms), $9 requested resources (JSON array or NULL), $10 requested scopes (or NULL),
# $11 event id, $12 event type, $13 event source, $14 event auth, $15 deliverable, $16 trace (the
# request id, as `record` writes it).
# $17 the DPoP proof's key thumbprint (or NULL): a bound grant rotates only with a proof of its key.
REFRESH_SQL = f"""
WITH r AS MATERIALIZED (
  SELECT id, grant_id, account_id FROM refresh_tokens
   WHERE token_hash = $1 AND status = 'active' AND expires_at > $2::bigint
), g AS (
  SELECT g.id, g.user_id, g.session_id, g.scope, g.org_id, g.resources, g.auth_time, g.amr, g.acr
    FROM r JOIN oidc_grants g ON g.id = r.grant_id
   WHERE r.account_id = $5 AND g.account_id = $5 AND g.issuer_id = $4 AND g.client_id = $3
     AND g.status = 'active'
     AND ($9::jsonb IS NULL OR $9::jsonb <@ g.resources)
     AND ($10::text[] IS NULL OR $10::text[] <@ string_to_array(g.scope, ' '))
     AND (g.dpop_jkt IS NULL OR g.dpop_jkt = $17::text)
     -- a concurrent family revocation (an UPDATE of the grant) waits for this rotation, or wins
     FOR SHARE OF g
), u AS (
  SELECT u.* FROM g
    JOIN users u ON u.id = g.user_id
    LEFT JOIN login_sessions s ON s.id = g.session_id
    {_MEMBER_OF.format(org="g.org_id", user="g.user_id")}
   WHERE u.account_id = $5 AND u.issuer_id = $4 AND u.status = 'active'
     AND (g.session_id IS NULL OR (s.account_id = $5 AND s.status = 'active'))
     AND (g.org_id IS NULL OR member.ok)
), consumed AS (
  UPDATE refresh_tokens t SET status = 'rotated', used_at = $2::bigint
    FROM r, u
   WHERE t.id = r.id AND t.status = 'active'
  RETURNING t.id
), new_token AS (
  INSERT INTO refresh_tokens (id, token_hash, account_id, grant_id, status, created_at, expires_at)
  SELECT $6, $7, $5, g.id, 'active', $2::bigint, $2::bigint + $8::bigint FROM g, consumed
), touched AS (
  UPDATE login_sessions s
     SET refresh_count = coalesce(s.refresh_count, 0) + 1, refresh_token_issued_at = $2::bigint,
         access_token_issued_at = $2::bigint, last_activity_at = $2::bigint, updated_at = $2::bigint
    FROM g, consumed
   WHERE s.id = g.session_id AND s.account_id = $5
), scope AS (
  SELECT CASE WHEN $10::text[] IS NULL THEN g.scope ELSE (
           SELECT string_agg(t.s, ' ' ORDER BY t.n)
             FROM unnest(string_to_array(g.scope, ' ')) WITH ORDINALITY AS t(s, n)
            WHERE t.s = ANY($10::text[])) END AS scope
    FROM g
), event AS (
  INSERT INTO events (id, account_id, issuer_id, user_id, client_id, type, source, timestamp,
                      subject, data, auth, deliverable, trace)
  SELECT $11, $5, $4, g.user_id, $3, $12, $13, $2::bigint,
         jsonb_build_object('type', 'session', 'id', coalesce(g.session_id, g.id)),
         jsonb_build_object('grant_id', g.id, 'scope', scope.scope), $14::jsonb, $15, $16
    FROM g, scope, consumed
)
SELECT g.id AS grant_id, g.session_id, g.scope AS grant_scope, g.org_id, g.resources, g.auth_time,
       g.amr, g.acr, {_USER_COLUMNS}, {_ORGS}
  FROM g, u, consumed
"""

# $1 code HMAC, $2 now (ms), $3 client, $4 issuer, $5 account, $6 redirect_uri, $7 S256 of the
# verifier, $8 requested resources (JSON array or NULL), $9 new grant id, $10 with a refresh token,
# $11/$12 its id/HMAC, $13 its lifetime (ms), $14 the DPoP key its refresh tokens are bound to.
CODE_SQL = f"""
WITH c AS MATERIALIZED (
  SELECT id, user_id, session_id, scope, nonce, org_id, resources, auth_time, amr, acr
    FROM authorization_codes
   WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2::bigint
     AND client_id = $3 AND issuer_id = $4 AND account_id = $5
     AND redirect_uri = $6 AND code_challenge = $7
     AND ($8::jsonb IS NULL OR $8::jsonb <@ resources)
), u AS (
  SELECT u.* FROM c
    JOIN users u ON u.id = c.user_id
    JOIN login_sessions s ON s.id = c.session_id
    {_MEMBER_OF.format(org="c.org_id", user="c.user_id")}
   WHERE u.account_id = $5 AND u.issuer_id = $4 AND u.status = 'active'
     AND s.account_id = $5 AND s.status = 'active' AND s.expires_at > $2::bigint
     AND (c.org_id IS NULL OR member.ok)
), used AS (
  UPDATE authorization_codes t SET used_at = $2::bigint, grant_id = $9
    FROM c, u
   WHERE t.id = c.id AND t.used_at IS NULL
  RETURNING t.id
), grant_row AS (
  INSERT INTO oidc_grants (id, account_id, issuer_id, client_id, user_id, session_id, scope, org_id,
                           resources, auth_time, amr, acr, status, created_at, dpop_jkt)
  SELECT $9, $5, $4, $3, c.user_id, c.session_id, c.scope, c.org_id, c.resources, c.auth_time,
         c.amr, c.acr, 'active', $2::bigint, $14::text
    FROM c, used
  RETURNING id
), new_token AS (
  INSERT INTO refresh_tokens (id, token_hash, account_id, grant_id, status, created_at, expires_at)
  SELECT $11, $12, $5, grant_row.id, 'active', $2::bigint, $2::bigint + $13::bigint
    FROM grant_row WHERE $10::boolean
), touched AS (
  UPDATE login_sessions s
     SET access_token_issued_at = $2::bigint, last_activity_at = $2::bigint, client_id = $3,
         refresh_token_issued_at = CASE WHEN $10::boolean THEN $2::bigint
                                        ELSE s.refresh_token_issued_at END
    FROM c, used
   WHERE s.id = c.session_id AND s.account_id = $5
)
SELECT c.session_id, c.scope, c.nonce, c.org_id, c.resources, c.auth_time, c.amr, c.acr,
       {_USER_COLUMNS}, {_ORGS}
  FROM c, u, used, grant_row
"""


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Nothing to reset on release: these statements leave no session state (no LISTEN, advisory
    lock, cursor or SET), so asyncpg's default reset query would only add a round trip per request."""


async def open_token_pool(database_url: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        to_asyncpg_dsn(database_url), min_size=1, max_size=max(1, size), reset=_keep_session,
        server_settings={"application_name": "authpi-token"})


async def close_token_pool(pool: asyncpg.Pool | None) -> None:
    if pool is not None:
        await pool.close()


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


# The `session.token-refreshed` row as `record` would build it (type checked, scrubbed, source,
# auth, deliverable), once per client: only its id and trace change per refresh, and the statement
# fills in what only the grant knows (user, subject, data). Building it per request (an ORM Event,
# the scrub, three JSON encodings) cost about a tenth of a refresh's Python time.
_REFRESH_EVENTS: dict[tuple[str, str, str], tuple[Any, ...]] = {}


def _refresh_event(keys: KeySet, client: CachedClient) -> tuple[Any, ...]:
    key = (keys.account_id, keys.issuer_id, client.id)
    row = _REFRESH_EVENTS.get(key)
    if row is None:
        if len(_REFRESH_EVENTS) > 10_000:
            _REFRESH_EVENTS.clear()
        row = _REFRESH_EVENTS[key] = event_row(
            type="session.token-refreshed", account_id=keys.account_id, issuer_id=keys.issuer_id,
            client_id=client.id, subject={}, data={}, auth={"type": "client", "client_id": client.id})
    return row


def _user(row: asyncpg.Record) -> UserView:
    return UserView(id=row["user_id"], username=row["username"], username_type=row["username_type"],
                    profile=_json(row["profile"]), security=_json(row["security"]),
                    created_at=row["user_created_at"], updated_at=row["user_updated_at"])


def _orgs(row: asyncpg.Record) -> list[dict[str, Any]]:
    groups = {gid: (org_id, scopes) for gid, org_id, scopes in _json(row["groups"])}
    return build_organizations_claim([tuple(m) for m in _json(row["memberships"])], groups)


def _resources(form: Form) -> tuple[list[str], str | None]:
    requested = form.getlist("resource")
    return requested, (json.dumps(requested) if requested else None)


async def refresh(pool: asyncpg.Pool, keys: KeySet, server_key: str, client: CachedClient, form: Form,
                  *, jkt: str | None = None) -> dict[str, Any] | None:
    """The token response, or None when the ORM path must decide (nothing was changed)."""
    raw = form.get("refresh_token")
    if "refresh_token" not in client.grant_types or not raw or len(raw) > 256:
        return None
    requested = requested_scopes(form)
    if requested is not None and not requested:
        return None
    resources, resources_json = _resources(form)
    refresh_id, new_raw, new_hash = new_refresh_token(server_key)
    event = _refresh_event(keys, client)
    now = now_ms()
    row = await pool.fetchrow(
        REFRESH_SQL, tokens.token_hash(server_key, "refresh", raw), now, client.id, keys.issuer_id,
        keys.account_id, refresh_id, new_hash, refresh_ttl_ms(client), resources_json, requested,
        new_id("evt"), event[6], event[7], event[11], event[14], current_request_id(), jkt)
    if row is None:
        return None
    grant_resources = list(_json(row["resources"]))
    grant = GrantView(id=row["grant_id"], account_id=keys.account_id, scope=row["grant_scope"],
                      session_id=row["session_id"], org_id=row["org_id"], auth_time=row["auth_time"],
                      amr=list(_json(row["amr"]) or []), acr=row["acr"])
    scope = " ".join(narrow_scopes(requested, row["grant_scope"].split()))
    ctx = IssueContext(keys=keys, server_key=server_key, client=client, grant=grant,
                       user=_user(row), orgs=_orgs(row), jkt=jkt)
    body = mint_user_tokens(ctx, nonce=None, resources=resources or grant_resources, scope=scope)
    body["refresh_token"] = new_raw
    return body


async def exchange(pool: asyncpg.Pool, keys: KeySet, server_key: str, client: CachedClient, form: Form,
                   *, jkt: str | None = None) -> dict[str, Any] | None:
    """The token response, or None when the ORM path must decide (nothing was changed)."""
    code, redirect_uri, verifier = form.get("code"), form.get("redirect_uri"), form.get("code_verifier")
    if ("authorization_code" not in client.grant_types or not code or len(code) > 256
            or not redirect_uri or not verifier or not pkce.VERIFIER.match(verifier)):
        return None
    resources, resources_json = _resources(form)
    with_refresh = "refresh_token" in client.grant_types
    refresh_id, new_raw, new_hash = new_refresh_token(server_key)
    grant_id = new_id("grt")
    row = await pool.fetchrow(
        CODE_SQL, tokens.token_hash(server_key, "code", code), now_ms(), client.id, keys.issuer_id,
        keys.account_id, redirect_uri, pkce.s256(verifier), resources_json, grant_id, with_refresh,
        refresh_id, new_hash, refresh_ttl_ms(client), grant_jkt(client, jkt))
    if row is None:
        return None
    code_resources = list(_json(row["resources"]))
    grant = GrantView(id=grant_id, account_id=keys.account_id, scope=row["scope"],
                      session_id=row["session_id"], org_id=row["org_id"], auth_time=row["auth_time"],
                      amr=list(_json(row["amr"]) or []), acr=row["acr"])
    ctx = IssueContext(keys=keys, server_key=server_key, client=client, grant=grant,
                       user=_user(row), orgs=_orgs(row), jkt=jkt)
    body = mint_user_tokens(ctx, nonce=row["nonce"], resources=resources or code_resources)
    if with_refresh:
        body["refresh_token"] = new_raw
    return body
