"""Groups of an organization: named scope bundles that members inherit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.errors import ValidationFailed
from app.core.ids import new_id, now_ms
from app.core.pagination import PageParams, paginate
from app.core.rows import one_or_404
from app.core.scopes import within
from app.events.service import record
from app.group.schemas import GroupCreate, GroupUpdate
from app.models.base import assign
from app.models.group import Group
from app.models.membership import Membership
from app.models.organization import Organization
from app.organization.service import touch


def check_within_org(org: Organization, scopes: list[str], field: str = "scopes") -> None:
    """An organization with a non-empty `scopes` list grants nothing outside it."""
    if not org.scopes:
        return
    outside = within(scopes, org.scopes)
    if outside:
        raise ValidationFailed(
            f"Scopes outside what the organization may grant: {', '.join(outside[:5])}",
            field=field, code="scope_not_allowed")


async def _event(session: AsyncSession, group: Group, type: str, auth: Principal,
                 data: dict[str, Any]) -> None:
    await record(session, type=type, account_id=group.account_id, issuer_id=group.issuer_id,
                 org_id=group.org_id, subject={"type": "group", "id": group.id}, data=data,
                 auth=auth)


async def get_group(session: AsyncSession, org: Organization, group_id: str,
                    for_update: bool = False) -> Group:
    stmt = select(Group).where(Group.id == group_id, Group.org_id == org.id,
                               Group.account_id == org.account_id)
    return await one_or_404(session, stmt, "group", for_update=for_update)


async def create_group(session: AsyncSession, org: Organization, body: GroupCreate,
                       auth: Principal) -> Group:
    check_within_org(org, body.scopes)
    group = Group(id=new_id("grp"), account_id=org.account_id, issuer_id=org.issuer_id,
                  org_id=org.id, name=body.name, description=body.description, scopes=body.scopes,
                  metadata_=body.metadata or {}, created_at=now_ms())
    session.add(group)
    await session.flush()
    await _event(session, group, "organization.group.created", auth,
                 {"name": group.name, "scopes": group.scopes})
    return group


async def update_group(session: AsyncSession, org: Organization, group: Group, body: GroupUpdate,
                       auth: Principal) -> Group:
    changes = body.model_dump(exclude_unset=True)
    if changes.get("scopes") is not None:
        check_within_org(org, changes["scopes"])
    assign(group, changes, lists=("scopes",))
    touch(group)
    await session.flush()
    await _event(session, group, "organization.group.updated", auth, {"changed": sorted(changes)})
    return group


async def delete_group(session: AsyncSession, group: Group, auth: Principal) -> None:
    # Members stop inheriting the group's scopes: drop its id from every membership of the org.
    members = (await session.scalars(
        select(Membership).where(Membership.org_id == group.org_id,
                                 Membership.account_id == group.account_id,
                                 Membership.groups.contains([group.id])).with_for_update())).all()
    for membership in members:
        membership.groups = [g for g in membership.groups if g != group.id]
        touch(membership)
    await session.delete(group)
    await session.flush()
    await _event(session, group, "organization.group.deleted", auth,
                 {"name": group.name, "members_updated": len(members)})


async def list_groups(session: AsyncSession, org: Organization, params: PageParams
                      ) -> tuple[list[Group], bool, str | None]:
    stmt: Select[Any] = select(Group).where(Group.org_id == org.id, Group.account_id == org.account_id)
    return await paginate(session, stmt, Group.id, params)


async def existing_group_ids(session: AsyncSession, org: Organization, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    rows = await session.scalars(select(Group.id).where(
        Group.org_id == org.id, Group.account_id == org.account_id, Group.id.in_(ids)))
    return set(rows.all())

