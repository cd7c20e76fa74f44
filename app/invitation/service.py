"""Organization invitations: a pending offer of membership to an email address.

Acceptance creates the membership the invitation describes, so an invitation obeys the same rules
as a membership (deny-by-default, scopes within the organization's, groups of the same org).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import generate_secret, hmac_sha256
from app.core.errors import Conflict, NotFound
from app.core.ids import new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.email.service import Mailer, on_email_sent, queue_email
from app.events.service import record
from app.group.service import check_within_org, existing_group_ids
from app.invitation.schemas import InvitationCreate, InvitationUpdate, effective_status
from app.membership.schemas import MemberCreate
from app.membership.service import check_groups, create_membership, is_full, require_grant
from app.models.invitation import Invitation
from app.models.membership import Membership
from app.models.organization import Organization
from app.models.outbox import OutboxMessage
from app.models.user import User
from app.organization.service import touch
from app.user.schemas import normalize_username


async def _event(session: AsyncSession, inv: Invitation, type: str,
                 auth: Principal | dict[str, Any], data: dict[str, Any] | None = None,
                 user_id: str | None = None) -> None:
    await record(session, type=type, account_id=inv.account_id, issuer_id=inv.issuer_id,
                 org_id=inv.org_id, user_id=user_id or inv.user_id_invited,
                 subject={"type": "invitation", "id": inv.id, "org_id": inv.org_id},
                 data={"email_invited": inv.email_invited, **(data or {})}, auth=auth)


async def get_invitation(session: AsyncSession, org: Organization, invitation_id: str,
                         for_update: bool = False) -> Invitation:
    stmt = select(Invitation).where(Invitation.id == invitation_id, Invitation.org_id == org.id,
                                    Invitation.account_id == org.account_id)
    if for_update:
        stmt = stmt.with_for_update()
    inv = await session.scalar(stmt)
    if inv is None:
        raise NotFound("invitation")
    return inv


async def _user_by_email(session: AsyncSession, org: Organization, normalized: str) -> User | None:
    return await session.scalar(select(User).where(
        User.account_id == org.account_id, User.issuer_id == org.issuer_id,
        User.username_normalized == normalized, User.status != "deleted"))


def token_hash(server_key: str, token: str) -> str:
    return hmac_sha256(server_key, f"invitation:{token}")


async def _send(session: AsyncSession, org: Organization, inv: Invitation, mailer: Mailer) -> None:
    """A fresh single-use link (192 random bits; only its HMAC is stored, on the invitation) and its
    email, in the outbox of this transaction. A resend's new link replaces the old one."""
    token = generate_secret(24)
    inv.token_hash = token_hash(mailer.server_key, token)
    await session.flush()
    inviter = inv.inviter or {}
    expires = datetime.fromtimestamp(inv.expires_at / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    await queue_email(
        session, mailer, account_id=inv.account_id, issuer_id=inv.issuer_id, to=inv.email_invited,
        template="invitation", purpose="invitation", ref_id=inv.id, user_id=inv.user_id_invited, org=org,
        context={"link": mailer.link(f"/{inv.issuer_id}/invitation/{token}"),
                 "organization_name": org.name, "message": inv.message,
                 "inviter_name": inviter.get("name") if isinstance(inviter.get("name"), str) else None,
                 "expires": expires})


async def _invitation_sent(session: AsyncSession, row: OutboxMessage, _payload: dict[str, Any]) -> None:
    """The relay sent an invitation's email: `last_email_sent_at` says so (no event of its own:
    `email.sent` is recorded beside it)."""
    inv = await session.scalar(select(Invitation).where(
        Invitation.id == row.ref_id, Invitation.account_id == row.account_id).with_for_update())
    if inv is not None:
        inv.last_email_sent_at = row.sent_at


on_email_sent("invitation", _invitation_sent)


def ttl_ms(mailer: Mailer) -> int:
    return mailer.settings.invitation_ttl_seconds * 1000


async def create_invitation(session: AsyncSession, org: Organization, body: InvitationCreate,
                            auth: Principal, mailer: Mailer) -> Invitation:
    if not org.invitation_enabled:
        raise Conflict("Invitations are disabled for this organization")
    mailer.require()
    scopes = list(org.default_member_scopes) if body.scopes is None else body.scopes
    require_grant(scopes, body.groups)
    check_within_org(org, scopes)
    await check_groups(session, org, body.groups)
    now = now_ms()
    normalized = normalize_username(body.email)
    pending = await session.scalar(select(Invitation.id).where(
        Invitation.org_id == org.id, Invitation.email_normalized == normalized,
        Invitation.status == "pending", Invitation.expires_at > now))
    if pending is not None:
        raise Conflict("A pending invitation for this email already exists")
    user = await _user_by_email(session, org, normalized)
    if user is not None and await session.scalar(select(Membership.id).where(
            Membership.org_id == org.id, Membership.member_id == user.id)) is not None:
        raise Conflict("This user is already a member of the organization")
    inv = Invitation(
        id=new_id("inv"), account_id=org.account_id, issuer_id=org.issuer_id, org_id=org.id,
        status="pending", email_invited=body.email, email_normalized=normalized,
        user_id_invited=user.id if user else None, user_title=body.user_title,
        message=body.message if "message" in body.model_fields_set else org.invitation_message,
        scopes=scopes, groups=body.groups, inviter={"id": auth.actor_id},
        metadata_=body.metadata or {}, expires_at=body.expires_at or now + ttl_ms(mailer),
        created_at=now)
    session.add(inv)
    await session.flush()
    await _event(session, inv, "organization.invitation.created", auth,
                 {"scopes": inv.scopes, "groups": inv.groups, "expires_at": inv.expires_at})
    await _send(session, org, inv, mailer)
    return inv


def _require_pending(inv: Invitation) -> None:
    status = effective_status(inv)
    if status != "pending":
        raise Conflict(f"The invitation is {status}")


async def update_invitation(session: AsyncSession, org: Organization, inv: Invitation,
                            body: InvitationUpdate, auth: Principal) -> Invitation:
    _require_pending(inv)
    changes = body.model_dump(exclude_unset=True)
    scopes = list(inv.scopes) if "scopes" not in changes else (changes["scopes"] or [])
    groups = list(inv.groups) if "groups" not in changes else (changes["groups"] or [])
    require_grant(scopes, groups)
    check_within_org(org, scopes)
    await check_groups(session, org, groups)
    inv.scopes, inv.groups = scopes, groups
    for field in ("user_title", "message"):
        if field in changes:
            setattr(inv, field, changes[field])
    if changes.get("expires_at") is not None:
        inv.expires_at = changes["expires_at"]
    if "metadata" in changes:
        inv.metadata_ = changes["metadata"] or {}
    touch(inv)
    await session.flush()
    await _event(session, inv, "organization.invitation.updated", auth, {"changed": sorted(changes)})
    return inv


async def resend_invitation(session: AsyncSession, org: Organization, inv: Invitation, auth: Principal,
                            mailer: Mailer) -> Invitation:
    """Sends the email again with a new link (the previous one stops working) and restarts the
    validity window (an expired invitation becomes usable again). `last_email_sent_at` is set when
    the relay has actually sent it."""
    if inv.status != "pending":
        raise Conflict(f"The invitation is {inv.status}")
    if not org.invitation_enabled:
        raise Conflict("Invitations are disabled for this organization")
    mailer.require()
    now = now_ms()
    inv.expires_at = max(inv.expires_at, now + ttl_ms(mailer))
    touch(inv)
    await session.flush()
    await _event(session, inv, "organization.invitation.resent", auth, {"expires_at": inv.expires_at})
    await _send(session, org, inv, mailer)
    return inv


async def _close(session: AsyncSession, inv: Invitation, status: str, auth: Principal | dict[str, Any]
                 ) -> Invitation:
    """A pending invitation ends as `revoked` or `declined` (its `*_at` and its event)."""
    if inv.status != "pending":
        raise Conflict(f"The invitation is {inv.status}")
    inv.status = status
    setattr(inv, f"{status}_at", now_ms())
    touch(inv)
    await session.flush()
    await _event(session, inv, f"organization.invitation.{status}", auth)
    return inv


async def revoke_invitation(session: AsyncSession, inv: Invitation, auth: Principal) -> Invitation:
    return await _close(session, inv, "revoked", auth)


async def list_invitations(session: AsyncSession, org: Organization, params: PageParams,
                           status: str | None) -> tuple[list[Invitation], bool, str | None]:
    stmt: Select[Any] = select(Invitation).where(Invitation.org_id == org.id,
                                                 Invitation.account_id == org.account_id)
    now = now_ms()
    if status == "expired":
        stmt = stmt.where(Invitation.status == "pending", Invitation.expires_at <= now)
    elif status == "pending":
        stmt = stmt.where(Invitation.status == "pending", Invitation.expires_at > now)
    elif status:
        stmt = stmt.where(Invitation.status == status)
    return await paginate(session, stmt, Invitation.id, params)


async def accept_invitation(session: AsyncSession, *, account_id: str, issuer_id: str,
                            invitation_id: str, user: User) -> Membership:
    """For the hosted pages: the signed-in user takes up an invitation sent to their email.

    Creates the membership the invitation describes and records both events.
    """
    inv = await session.scalar(select(Invitation).where(
        Invitation.id == invitation_id, Invitation.account_id == account_id,
        Invitation.issuer_id == issuer_id).with_for_update())
    if inv is None or user.account_id != account_id or user.issuer_id != issuer_id:
        raise NotFound("invitation")
    if inv.email_normalized != user.username_normalized:
        raise NotFound("invitation")  # never confirm an invitation to someone else exists
    _require_pending(inv)
    org = await session.scalar(select(Organization).where(
        Organization.id == inv.org_id, Organization.account_id == account_id,
        Organization.status == "active"))
    if org is None:
        raise NotFound("organization")
    if not org.invitation_enabled:
        raise Conflict("Invitations are disabled for this organization")
    actor = {"type": "user", "user_id": user.id}
    principal = Principal(type="user", account_id=account_id, account_level=False,
                          user_id=user.id, issuer_id=issuer_id)
    # Groups deleted since the invitation was sent are dropped, not fatal.
    existing = await existing_group_ids(session, org, inv.groups)
    groups = [g for g in inv.groups if g in existing]
    membership = await create_membership(
        session, org, MemberCreate(member_id=user.id, scopes=inv.scopes, groups=groups,
                                   user_title=inv.user_title), principal)
    inv.status = "accepted"
    inv.accepted_at = now_ms()
    inv.user_id_invited = user.id
    touch(inv)
    await session.flush()
    await _event(session, inv, "organization.invitation.accepted", actor, user_id=user.id)
    return membership



# ---- the link in the mail (the hosted invitation page) -------------------------------------------

# Why a link cannot be used, best first: each is its own page on the hosted invitation page.
NOT_FOUND, EXPIRED, REVOKED, ACCEPTED, DECLINED = "not_found", "expired", "revoked", "accepted", "declined"
SUSPENDED, DISABLED, FULL = "suspended", "disabled", "full"
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


async def find_by_link(session: AsyncSession, server_key: str, *, account_id: str, issuer_id: str,
                       token: str, lock: bool = False
                       ) -> tuple[Invitation | None, Organization | None, str | None]:
    """(invitation, organization, refusal) for a link's token at this issuer: refusal is None when
    the invitation can be accepted or declined now. Only the HMAC of the token is compared (a link
    of another issuer, or an older link of a resent invitation, is simply unknown). With `lock`, the
    invitation and its organization are locked (FOR UPDATE), so concurrent acceptances serialise
    on the organization (its `max_members` holds)."""
    if not token or len(token) > 100 or not set(token) <= _TOKEN_CHARS:
        return None, None, NOT_FOUND
    stmt = select(Invitation).where(Invitation.token_hash == token_hash(server_key, token),
                                    Invitation.account_id == account_id, Invitation.issuer_id == issuer_id)
    inv = await session.scalar(stmt.with_for_update() if lock else stmt)
    if inv is None:
        return None, None, NOT_FOUND
    org_stmt = select(Organization).where(Organization.id == inv.org_id,
                                          Organization.account_id == account_id,
                                          Organization.issuer_id == issuer_id)
    org = await session.scalar(org_stmt.with_for_update() if lock else org_stmt)
    if org is None:
        return None, None, NOT_FOUND
    status = effective_status(inv)
    if status != "pending":
        return inv, org, status if status in (EXPIRED, REVOKED, ACCEPTED, DECLINED) else NOT_FOUND
    if org.status != "active":
        return inv, org, SUSPENDED
    if not org.invitation_enabled:
        return inv, org, DISABLED
    if await is_full(session, org):
        return inv, org, FULL
    return inv, org, None


async def invited_user(session: AsyncSession, org: Organization, inv: Invitation) -> User | None:
    """The issuer's user whose username is the invited email, if one exists."""
    return await _user_by_email(session, org, inv.email_normalized)


async def decline_invitation(session: AsyncSession, inv: Invitation, auth: dict[str, Any]) -> Invitation:
    """The invited person said no (the hosted page, holding the link): `organization.invitation.declined`."""
    _require_pending(inv)
    return await _close(session, inv, "declined", auth)
