"""Users of an issuer, their password, and password authentication for the OIDC layer."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.crypto import DUMMY_HASH, SecretCheck, check_in_thread, hash_secret
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.core.rows import one_or_404
from app.events.service import record
from app.issuer.dependencies import get_issuer_in_account
from app.models.federated_identity import FederatedIdentity
from app.models.membership import Membership
from app.models.personal_token import PersonalToken
from app.models.trusted_device import TrustedDevice
from app.models.user import User
from app.models.user_verifier import UserVerifier
from app.organization.service import touch
from app.user.identifiers import skeleton
from app.user.schemas import (
    UserCreate,
    UserUpdate,
    display_username,
    normalize_username,
    username_error,
)


def subject(user: User) -> dict[str, Any]:
    return {"type": "user", "id": user.id}


async def _event(session: AsyncSession, user: User, type: str, auth: Principal | dict[str, Any],
                 data: dict[str, Any] | None = None) -> None:
    await record(session, type=type, account_id=user.account_id, issuer_id=user.issuer_id,
                 user_id=user.id, subject=subject(user), data=data or {}, auth=auth)


async def get_user(session: AsyncSession, *, account_id: str, issuer_id: str, user_id: str,
                   for_update: bool = False) -> User:
    """The user if it lives in this account and issuer and is not deleted; else 404."""
    stmt = select(User).where(User.id == user_id, User.account_id == account_id,
                              User.issuer_id == issuer_id, User.status != "deleted")
    return await one_or_404(session, stmt, "user", for_update=for_update)


async def get_user_in_issuer(session: AsyncSession, account_id: str, issuer_id: str, user_id: str,
                             for_update: bool = False) -> User:
    """The prologue of every {U} route: the issuer must be the account's and live, then the user
    must live in it; anything else is a 404."""
    await get_issuer_in_account(session, account_id, issuer_id)
    return await get_user(session, account_id=account_id, issuer_id=issuer_id, user_id=user_id,
                          for_update=for_update)


async def _username_taken(session: AsyncSession, issuer_id: str, normalized: str,
                          except_id: str | None = None) -> bool:
    stmt = select(User.id).where(User.issuer_id == issuer_id, User.username_normalized == normalized)
    if except_id:
        stmt = stmt.where(User.id != except_id)
    return (await session.scalar(stmt)) is not None


async def _lookalike_taken(session: AsyncSession, issuer_id: str, skel: str,
                           except_id: str | None = None) -> bool:
    stmt = select(User.id).where(User.issuer_id == issuer_id, User.username_skeleton == skel)
    if except_id:
        stmt = stmt.where(User.id != except_id)
    return (await session.scalar(stmt.limit(1))) is not None


async def _check_username_free(session: AsyncSession, issuer_id: str, normalized: str,
                               except_id: str | None = None) -> str:
    """409 for the same username or a look-alike of one; returns the skeleton to store."""
    if await _username_taken(session, issuer_id, normalized, except_id=except_id):
        raise Conflict("A user with this username already exists in the issuer")
    skel = skeleton(normalized)
    if await _lookalike_taken(session, issuer_id, skel, except_id=except_id):
        raise Conflict("A user with a look-alike username already exists in the issuer",
                       fields=[FieldError("username", "lookalike",
                                          "looks like the username of an existing user")])
    return skel


async def _flush_unique(session: AsyncSession) -> None:
    """A concurrent insert of the same username loses at the unique constraint: still a 409."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("A user with this username already exists in the issuer") from exc


async def create_user(session: AsyncSession, *, account_id: str, issuer_id: str, body: UserCreate,
                      auth: Principal) -> User:
    normalized = normalize_username(body.username)
    skel = await _check_username_free(session, issuer_id, normalized)
    now = now_ms()
    pending = body.status == "pending_approval"
    user = User(id=new_id("usr"), account_id=account_id, issuer_id=issuer_id, status=body.status,
                username_type=body.username_type, username=body.username,
                username_normalized=normalized, username_skeleton=skel, profile=body.profile,
                scopes=body.scopes or [],
                security={}, preferences=body.preferences or {},
                custom_fields=body.custom_fields or {}, metadata_=body.metadata or {},
                approval={"status": "pending", "requested_at": now} if pending else {},
                created_at=now)
    if body.password is not None:
        user.password_hash = await asyncio.to_thread(hash_secret, body.password)
        user.password_changed_at = now
    session.add(user)
    await _flush_unique(session)
    await _event(session, user, "user.created", auth,
                 {"username_type": user.username_type, "password_set": body.password is not None})
    if pending:
        await _event(session, user, "user.approval.requested", auth)
    return user


async def list_pending_approvals(session: AsyncSession, *, account_id: str, issuer_id: str,
                                 params: PageParams) -> tuple[list[User], bool, str | None]:
    stmt: Select[Any] = select(User).where(
        User.account_id == account_id, User.issuer_id == issuer_id, User.status != "deleted",
        User.approval.contains({"status": "pending"}))
    return await paginate(session, stmt, User.id, params)


async def get_approval_user(session: AsyncSession, *, account_id: str, issuer_id: str, user_id: str,
                            for_update: bool = False) -> User:
    """An approval's id is its user's id; users that never needed approval have none (404)."""
    user = await get_user(session, account_id=account_id, issuer_id=issuer_id, user_id=user_id,
                          for_update=for_update)
    if not user.approval:
        raise NotFound("approval")
    return user


async def decide_approval(session: AsyncSession, user: User, *, status: str, reason: str | None,
                          auth: Principal) -> User:
    if user.approval.get("status") != "pending":
        raise Conflict(f"The approval is already {user.approval.get('status')}")
    now = now_ms()
    user.approval = {**user.approval, "status": status, "decided_at": now,
                     "decided_by": auth.actor_id, "reason": reason}
    # Rejected users stay on record (for the trail) but can never sign in.
    user.status = "active" if status == "approved" else "rejected"
    user.status_at, user.status_by, user.status_reason = now, auth.actor_id, reason
    touch(user)
    await session.flush()
    await _event(session, user, f"user.approval.{status}", auth, {"reason": reason})
    return user


async def update_user(session: AsyncSession, user: User, body: UserUpdate, auth: Principal) -> User:
    changes = body.model_dump(exclude_unset=True)
    new_status = changes.pop("status", None)
    reason = changes.pop("status_reason", None)
    if "username" in changes or "username_type" in changes:
        kind = changes.get("username_type") or user.username_type
        username = (changes.get("username") or user.username).strip()
        err = username_error(kind, username)
        if err:
            raise ValidationFailed(err, field="username")
        username = display_username(kind, username)
        normalized = normalize_username(username)
        skel = await _check_username_free(session, user.issuer_id, normalized, except_id=user.id)
        user.username_type, user.username, user.username_normalized = kind, username, normalized
        user.username_skeleton = skel
    for field in ("profile", "preferences", "custom_fields", "metadata", "scopes"):
        if field in changes:
            empty: Any = [] if field == "scopes" else {}
            setattr(user, "metadata_" if field == "metadata" else field, changes[field] or empty)
    status_changed = new_status is not None and new_status != user.status
    if status_changed and user.status in ("pending_approval", "rejected"):
        raise Conflict("This user awaits an approval decision: use the approvals API")
    user.apply_status(new_status, reason, "status_reason" in body.model_fields_set, auth.actor_id)
    touch(user)
    await _flush_unique(session)
    if changes or (not status_changed and "status_reason" in body.model_fields_set):
        await _event(session, user, "user.updated", auth, {"changed": sorted(changes)})
    if status_changed:
        await _event(session, user, "user.blocked" if new_status == "blocked" else "user.unblocked",
                     auth, {"reason": reason})
    return user


async def delete_user(session: AsyncSession, user: User, auth: Principal) -> None:
    user.status = "deleted"
    user.status_at = now_ms()
    user.status_by = auth.actor_id
    # Frees the username for a new user; the row stays for the trail.
    user.username_normalized = f"deleted:{user.id}"
    user.username_skeleton = None
    user.password_hash = None
    touch(user)
    # A deleted user belongs to no organization: drop the memberships, each with its own event.
    memberships = (await session.scalars(select(Membership).where(
        Membership.account_id == user.account_id, Membership.issuer_id == user.issuer_id,
        Membership.member_id == user.id).with_for_update())).all()
    for membership in memberships:
        await session.delete(membership)
    # Second factors hold key material: a deleted user keeps none.
    await session.execute(delete(UserVerifier).where(UserVerifier.user_id == user.id,
                                                     UserVerifier.account_id == user.account_id))
    await session.execute(delete(TrustedDevice).where(TrustedDevice.user_id == user.id,
                                                      TrustedDevice.account_id == user.account_id))
    await session.execute(delete(PersonalToken).where(PersonalToken.user_id == user.id,
                                                      PersonalToken.account_id == user.account_id))
    # Its upstream identities let go: a later sign-in through them starts afresh.
    await session.execute(delete(FederatedIdentity).where(FederatedIdentity.user_id == user.id,
                                                          FederatedIdentity.account_id == user.account_id))
    await session.flush()
    await _event(session, user, "user.deleted", auth, {"memberships_removed": len(memberships)})
    for membership in memberships:
        await record(session, type="organization.membership.deleted", account_id=user.account_id,
                     issuer_id=user.issuer_id, org_id=membership.org_id, user_id=user.id,
                     subject={"type": "membership", "id": membership.id, "org_id": membership.org_id,
                              "member_id": user.id},
                     data={"reason": "user.deleted"}, auth=auth)


async def list_users(session: AsyncSession, *, account_id: str, issuer_id: str, params: PageParams,
                     status: str | None) -> tuple[list[User], bool, str | None]:
    stmt: Select[Any] = select(User).where(User.account_id == account_id, User.issuer_id == issuer_id,
                                           User.status != "deleted")
    if status:
        stmt = stmt.where(User.status == status)
    return await paginate(session, stmt, User.id, params)


async def set_password(session: AsyncSession, user: User, password: str, auth: Principal) -> User:
    user.password_hash = await asyncio.to_thread(hash_secret, password)
    user.password_changed_at = now_ms()
    touch(user)
    await session.flush()
    await _event(session, user, "user.password.changed", auth)
    return user


async def mark_email_verified(session: AsyncSession, user: User, auth: Principal | dict[str, Any],
                              via: str) -> None:
    """The user proved they receive mail at their email username (a link we mailed them):
    `email_verified` in their tokens from now on, and `user.email.verified` once."""
    if (user.security or {}).get("email_verified") is True:
        return
    user.security = {**(user.security or {}), "email_verified": True}
    touch(user)
    await session.flush()
    await _event(session, user, "user.email.verified", auth, {"email": user.username, "via": via})


async def remove_password(session: AsyncSession, user: User, auth: Principal) -> None:
    user.password_hash = None
    user.password_changed_at = None
    touch(user)
    await session.flush()
    await _event(session, user, "user.verifier.deleted", auth, {"type": "password"})


async def authenticate_password(session: AsyncSession, *, account_id: str, issuer_id: str,
                                username: str, password: str, check: SecretCheck = check_in_thread
                                ) -> User | None:
    """The active user whose password matches, else None.

    Unknown usernames and users without a password are checked against a dummy hash, so the time
    taken does not reveal which usernames exist.
    """
    user = await session.scalar(
        select(User).where(User.account_id == account_id, User.issuer_id == issuer_id,
                           User.username_normalized == normalize_username(username),
                           User.status != "deleted"))
    stored = user.password_hash if user is not None else None
    ok = await check(stored or DUMMY_HASH, password[:256])
    if not ok or user is None or stored is None or user.status != "active":
        return None
    return user
