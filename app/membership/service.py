"""Organization memberships: which users belong to an organization and with which scopes.

Deny-by-default: a membership holds at least one scope or one group, and never grants more than the
organization may (its `scopes`, when that list is non-empty).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import Conflict, ValidationFailed
from app.core.ids import looks_like_id, new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.core.rows import one_or_404
from app.events.service import record
from app.group.service import check_within_org, existing_group_ids
from app.membership.schemas import MemberCreate, MemberUpdate
from app.models.group import Group
from app.models.membership import Membership
from app.models.organization import Organization
from app.models.user import User
from app.organization.service import touch


async def _event(session: AsyncSession, m: Membership, type: str, auth: Principal,
                 data: dict[str, Any]) -> None:
    await record(session, type=type, account_id=m.account_id, issuer_id=m.issuer_id, org_id=m.org_id,
                 user_id=m.member_id, subject={"type": "membership", "id": m.id,
                                               "org_id": m.org_id, "member_id": m.member_id},
                 data=data, auth=auth)


async def check_groups(session: AsyncSession, org: Organization, groups: list[str]) -> None:
    missing = [g for g in groups if g not in await existing_group_ids(session, org, groups)]
    if missing:
        raise ValidationFailed(f"Unknown groups in this organization: {', '.join(missing[:5])}",
                               field="groups", code="not_found")


def require_grant(scopes: list[str], groups: list[str]) -> None:
    if not scopes and not groups:
        raise ValidationFailed("A membership must hold at least one scope or group (deny-by-default)",
                               field="scopes", code="required")


async def is_full(session: AsyncSession, org: Organization) -> bool:
    """The organization has `max_members` members already (no new membership fits)."""
    if org.max_members is None:
        return False
    count = await session.scalar(select(func.count()).select_from(Membership).where(
        Membership.org_id == org.id, Membership.account_id == org.account_id))
    return (count or 0) >= org.max_members


async def get_membership(session: AsyncSession, org: Organization, member_id: str,
                         for_update: bool = False) -> Membership:
    stmt = select(Membership).where(Membership.org_id == org.id, Membership.member_id == member_id,
                                    Membership.account_id == org.account_id)
    return await one_or_404(session, stmt, "member", for_update=for_update)


async def create_membership(session: AsyncSession, org: Organization, body: MemberCreate,
                            auth: Principal) -> Membership:
    if not looks_like_id(body.member_id, "usr"):
        raise ValidationFailed("member_id must be a user id (usr_...)", field="member_id")
    user_ok = await session.scalar(select(User.id).where(
        User.id == body.member_id, User.account_id == org.account_id,
        User.issuer_id == org.issuer_id, User.status != "deleted"))
    if user_ok is None:
        raise ValidationFailed("No such user in this issuer", field="member_id", code="not_found")
    scopes = list(org.default_member_scopes) if body.scopes is None else body.scopes
    require_grant(scopes, body.groups)
    check_within_org(org, scopes)
    await check_groups(session, org, body.groups)
    existing = await session.scalar(select(Membership.id).where(
        Membership.org_id == org.id, Membership.member_id == body.member_id))
    if existing is not None:
        raise Conflict("The user is already a member of this organization")
    if await is_full(session, org):
        raise Conflict("The organization has reached its max_members")
    now = now_ms()
    m = Membership(id=new_id("mem"), account_id=org.account_id, issuer_id=org.issuer_id,
                   org_id=org.id, member_id=body.member_id, member_type=body.member_type,
                   status=body.status, scopes=scopes, groups=body.groups, user_title=body.user_title,
                   metadata_=body.metadata or {}, joined_at=now, created_at=now)
    session.add(m)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent add of the same member
        raise Conflict("The user is already a member of this organization") from exc
    await _event(session, m, "organization.membership.created", auth,
                 {"scopes": m.scopes, "groups": m.groups})
    return m


async def update_membership(session: AsyncSession, org: Organization, m: Membership,
                            body: MemberUpdate, auth: Principal) -> Membership:
    changes = body.model_dump(exclude_unset=True)
    scopes = changes["scopes"] if changes.get("scopes") is not None else list(m.scopes)
    groups = changes["groups"] if changes.get("groups") is not None else list(m.groups)
    if "scopes" in changes and changes["scopes"] is None:
        scopes = []
    if "groups" in changes and changes["groups"] is None:
        groups = []
    require_grant(scopes, groups)
    check_within_org(org, scopes)
    await check_groups(session, org, groups)
    m.scopes, m.groups = scopes, groups
    if "user_title" in changes:
        m.user_title = changes["user_title"]
    if "metadata" in changes:
        m.metadata_ = changes["metadata"] or {}
    if changes.get("status"):
        m.status = changes["status"]
    touch(m)
    await session.flush()
    await _event(session, m, "organization.membership.updated", auth,
                 {"changed": sorted(changes), "scopes": m.scopes, "groups": m.groups})
    return m


async def delete_membership(session: AsyncSession, m: Membership, auth: Principal) -> None:
    await session.delete(m)
    await session.flush()
    await _event(session, m, "organization.membership.deleted", auth, {})


async def list_memberships(session: AsyncSession, org: Organization, params: PageParams, *,
                           status: str | None, scope: str | None
                           ) -> tuple[list[Membership], bool, str | None]:
    stmt: Select[Any] = select(Membership).where(Membership.org_id == org.id,
                                                 Membership.account_id == org.account_id)
    if status:
        stmt = stmt.where(Membership.status == status)
    if scope:
        stmt = stmt.where(Membership.scopes.contains([scope]))
    return await paginate(session, stmt, Membership.id, params)


async def organizations_claim(session: AsyncSession, *, account_id: str, issuer_id: str,
                              user_id: str) -> list[dict[str, Any]]:
    """The `organizations` token claim: the user's active memberships in active organizations,
    each with its effective scopes (own, then each group's, deduplicated in order) and
    `joined_at` in seconds (JWT claims speak seconds)."""
    rows = (await session.execute(
        select(Membership, Organization.name)
        .join(Organization, Organization.id == Membership.org_id)
        .where(Membership.account_id == account_id, Membership.issuer_id == issuer_id,
               Membership.member_id == user_id, Membership.status == "active",
               Organization.account_id == account_id, Organization.status == "active")
        .order_by(Membership.joined_at, Membership.id))).all()
    group_ids = {g for m, _ in rows for g in m.groups}
    group_scopes: dict[str, tuple[str, list[str]]] = {}
    if group_ids:
        groups = await session.execute(select(Group.id, Group.org_id, Group.scopes).where(
            Group.account_id == account_id, Group.id.in_(group_ids)))
        group_scopes = {gid: (org_id, scopes) for gid, org_id, scopes in groups.all()}
    return build_organizations_claim(
        [(m.org_id, org_name, m.scopes, m.groups, m.joined_at) for m, org_name in rows], group_scopes)


def build_organizations_claim(memberships: list[tuple[str, str, list[Any], list[Any], int]],
                              group_scopes: dict[str, tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """The claim from (org id, org name, own scopes, group ids, joined_at ms) rows, in order, and the
    groups' (org id, scopes): shared with the token endpoint's one-statement paths."""
    claim = []
    for org_id, org_name, own, group_ids, joined_at in memberships:
        scopes = list(own)
        for gid in group_ids:
            entry = group_scopes.get(gid)
            if entry and entry[0] == org_id:  # a group of another org never adds scopes
                scopes.extend(entry[1])
        claim.append({"id": org_id, "title": org_name, "scopes": list(dict.fromkeys(scopes)),
                      "joined_at": joined_at // 1000})
    return claim
