"""Users of an issuer, their verifiers and trusted devices, and approvals (SDK-CONTRACT §2.18, §2.19)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import envelopes
from app.core.auth import Principal, scoped
from app.core.errors import NotFound, ValidationFailed
from app.core.etags import check_if_match, if_match
from app.core.pagination import PageParams, page_params
from app.core.responses import Obj, Page
from app.core.session import db_session
from app.issuer.dependencies import get_issuer_in_account
from app.models.user import User
from app.user import devices, service, tokens, verifiers
from app.user.schemas import (
    ApprovalDecision,
    BackupCodes,
    CodeCheck,
    CodeCheckResult,
    DeviceCreate,
    DeviceTrusted,
    EnrollmentComplete,
    EnrollmentResult,
    RevokedCount,
    TotpEnrollment,
    UserCreate,
    UserListItem,
    UserOut,
    UserUpdate,
    VerifierCreate,
    VerifierOut,
    VerifierUpdate,
    password_verifier,
    password_verifier_id,
)

router = APIRouter(tags=["users"])

USERS = "/accounts/{account_id}/issuers/{issuer_id}/users"
ONE = USERS + "/{user_id}"
APPROVALS = "/accounts/{account_id}/issuers/{issuer_id}/approvals"
TOKENS = "/accounts/{account_id}/tokens"
READ = scoped("issuers.users", "read")
WRITE = scoped("issuers.users", "write")


@router.get(USERS, response_model=Page[UserListItem])
async def list_users(
    account_id: str,
    issuer_id: str,
    request: Request,
    status: str | None = Query(None, max_length=32),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The issuer's users, newest first (usernames appear only as HMACs here)."""
    await get_issuer_in_account(session, account_id, issuer_id)
    rows, has_more, cursor = await service.list_users(session, account_id=account_id,
                                                      issuer_id=issuer_id, params=params,
                                                      status=status)
    key = request.app.state.secret_key
    return envelopes.page([UserListItem.of_user(u, key) for u in rows], has_more=has_more,
                          next_cursor=cursor)


@router.post(USERS, status_code=201, response_model=Obj[UserOut])
async def create_user(
    account_id: str,
    issuer_id: str,
    body: UserCreate,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Create a user; an optional password is stored as an argon2id hash only."""
    await get_issuer_in_account(session, account_id, issuer_id)
    user = await service.create_user(session, account_id=account_id, issuer_id=issuer_id, body=body,
                                     auth=principal)
    return envelopes.created(UserOut.of(user))


@router.get(ONE, response_model=Obj[UserOut])
async def get_user(
    account_id: str,
    issuer_id: str,
    user_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One user."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    return envelopes.obj(UserOut.of(user))


@router.patch(ONE, response_model=Obj[UserOut])
async def update_user(
    account_id: str,
    issuer_id: str,
    user_id: str,
    body: UserUpdate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Change a user; status `blocked` blocks, `active` unblocks."""
    user = if_match(request, await service.get_user_in_issuer(session, account_id, issuer_id, user_id,
                                                              for_update=True))
    user = await service.update_user(session, user, body, principal)
    return envelopes.obj(UserOut.of(user))


@router.delete(ONE, status_code=204)
async def delete_user(
    account_id: str,
    issuer_id: str,
    user_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete a user (soft: status `deleted`, 404 afterwards; the username is freed)."""
    user = if_match(request, await service.get_user_in_issuer(session, account_id, issuer_id, user_id,
                                                              for_update=True))
    await service.delete_user(session, user, principal)
    return envelopes.no_content()


def _is_password(user: User, verifier_id: str) -> bool:
    return verifier_id == password_verifier_id(user)


@router.get(ONE + "/verifiers", response_model=Page[VerifierOut])
async def list_verifiers(
    account_id: str,
    issuer_id: str,
    user_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The user's verifiers (never paginated: the SDK's list_all sends no cursor)."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    items = [password_verifier(user)] if user.password_hash else []
    items += [verifiers.verifier_out(v) for v in await verifiers.list_totp(session, user)]
    return envelopes.page(items)


@router.post(ONE + "/verifiers", status_code=201, response_model=Obj[VerifierOut | TotpEnrollment])
async def create_verifier(
    account_id: str,
    issuer_id: str,
    user_id: str,
    body: VerifierCreate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Set the password (`type: password`; never echoed) or start a TOTP enrollment (`type: totp`;
    the key is shown in this response only)."""
    issuer = await get_issuer_in_account(session, account_id, issuer_id)
    if body.type == "password" and body.password is None:
        raise ValidationFailed("A password verifier needs a password", field="password",
                               code="missing")
    if body.type == "totp" and body.password is not None:
        raise ValidationFailed("A TOTP verifier takes no password", field="password")
    user = await service.get_user(session, account_id=account_id, issuer_id=issuer_id,
                                  user_id=user_id, for_update=True)
    if body.type == "password":
        assert body.password is not None
        user = await service.set_password(session, user, body.password, principal)
        return envelopes.created(password_verifier(user))
    _, enrollment = await verifiers.start_totp(
        session, user, name=body.name, issuer_name=issuer.name,
        server_key=request.app.state.secret_key, auth=principal)
    return envelopes.created(TotpEnrollment(**enrollment))


@router.post(ONE + "/verifiers/complete-enrollment", response_model=Obj[EnrollmentResult])
async def complete_enrollment(
    account_id: str,
    issuer_id: str,
    user_id: str,
    body: EnrollmentComplete,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Confirm a TOTP enrollment with a current code; answers the backup codes once."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    result = await verifiers.complete_totp(session, user, enrollment_id=body.enrollment_id,
                                           code=body.code, server_key=request.app.state.secret_key,
                                           auth=principal)
    return envelopes.obj(EnrollmentResult(**result))


@router.get(ONE + "/verifiers/{verifier_id}", response_model=Obj[VerifierOut])
async def get_verifier(
    account_id: str,
    issuer_id: str,
    user_id: str,
    verifier_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One verifier of the user (never its secret)."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    if _is_password(user, verifier_id):
        if not user.password_hash:
            raise NotFound("verifier")
        return envelopes.obj(password_verifier(user))
    return envelopes.obj(verifiers.verifier_out(await verifiers.get_totp(session, user, verifier_id)))


@router.patch(ONE + "/verifiers/{verifier_id}", response_model=Obj[VerifierOut])
async def update_verifier(
    account_id: str,
    issuer_id: str,
    user_id: str,
    verifier_id: str,
    body: VerifierUpdate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Rename a TOTP verifier, or disable / re-enable it."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    if _is_password(user, verifier_id) and user.password_hash:
        raise ValidationFailed("The password verifier is changed by creating a new one",
                               field="verifier_id")
    v = if_match(request, await verifiers.get_totp(session, user, verifier_id, for_update=True))
    v = await verifiers.update_totp(session, user, v, body.model_dump(exclude_unset=True), principal)
    return envelopes.obj(verifiers.verifier_out(v))


@router.delete(ONE + "/verifiers/{verifier_id}", status_code=204)
async def delete_verifier(
    account_id: str,
    issuer_id: str,
    user_id: str,
    verifier_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Remove a verifier; removing the password verifier clears the password."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id, for_update=True)
    if _is_password(user, verifier_id):
        if not user.password_hash:
            raise NotFound("verifier")
        check_if_match(request, password_verifier(user).created_at)
        await service.remove_password(session, user, principal)
        return envelopes.no_content()
    v = if_match(request, await verifiers.get_totp(session, user, verifier_id, for_update=True))
    await verifiers.delete_totp(session, user, v, principal)
    return envelopes.no_content()


@router.post(ONE + "/verifiers/{verifier_id}/regenerate", response_model=Obj[BackupCodes])
async def regenerate_backup_codes(
    account_id: str,
    issuer_id: str,
    user_id: str,
    verifier_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Replace a TOTP verifier's backup codes (the new codes are shown once; no body)."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    if _is_password(user, verifier_id) and user.password_hash:
        raise ValidationFailed("Only TOTP verifiers have backup codes", field="verifier_id")
    v = if_match(request, await verifiers.get_totp(session, user, verifier_id, for_update=True))
    codes = await verifiers.regenerate_codes(session, user, v, server_key=request.app.state.secret_key,
                                             auth=principal)
    return envelopes.obj(BackupCodes(codes=codes))


@router.post(ONE + "/verifiers/{verifier_id}/verify", response_model=Obj[CodeCheckResult])
async def verify_verifier(
    account_id: str,
    issuer_id: str,
    user_id: str,
    verifier_id: str,
    body: CodeCheck,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Check a TOTP or backup code; each code is accepted once."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    if _is_password(user, verifier_id) and user.password_hash:
        raise ValidationFailed("The password verifier is not checked with a code",
                               field="verifier_id")
    v = if_match(request, await verifiers.get_totp(session, user, verifier_id, for_update=True))
    result = await verifiers.verify_code(session, user, v, code=body.code,
                                         server_key=request.app.state.secret_key, auth=principal)
    return envelopes.obj(CodeCheckResult(**result))


@router.get(APPROVALS, response_model=Page[UserListItem])
async def list_approvals(
    account_id: str,
    issuer_id: str,
    request: Request,
    params: PageParams = Depends(page_params),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Users awaiting an approval decision, newest first."""
    await get_issuer_in_account(session, account_id, issuer_id)
    rows, has_more, cursor = await service.list_pending_approvals(
        session, account_id=account_id, issuer_id=issuer_id, params=params)
    key = request.app.state.secret_key
    return envelopes.page([UserListItem.of_user(u, key) for u in rows], has_more=has_more,
                          next_cursor=cursor)


@router.get(APPROVALS + "/{user_id}", response_model=Obj[UserOut])
async def get_approval(
    account_id: str,
    issuer_id: str,
    user_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The user behind an approval (its id is the user id), with its `approval` object."""
    await get_issuer_in_account(session, account_id, issuer_id)
    user = await service.get_approval_user(session, account_id=account_id, issuer_id=issuer_id,
                                           user_id=user_id)
    return envelopes.obj(UserOut.of(user))


@router.patch(APPROVALS + "/{user_id}", response_model=Obj[UserOut])
async def decide_approval(
    account_id: str,
    issuer_id: str,
    user_id: str,
    body: ApprovalDecision,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Approve (the user becomes active) or reject (the user can never sign in)."""
    await get_issuer_in_account(session, account_id, issuer_id)
    user = if_match(request, await service.get_approval_user(
        session, account_id=account_id, issuer_id=issuer_id, user_id=user_id, for_update=True))
    user = await service.decide_approval(session, user, status=body.status, reason=body.reason,
                                         auth=principal)
    return envelopes.obj(UserOut.of(user))


@router.get(ONE + "/trusted-devices", response_model=Page[devices.DeviceOut])
async def list_trusted_devices(
    account_id: str,
    issuer_id: str,
    user_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The user's unexpired trusted devices (never paginated: list_all sends no cursor)."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    return envelopes.page([devices.DeviceOut.of(d) for d in await devices.list_devices(session, user)])


@router.post(ONE + "/trusted-devices/revoke-all", response_model=Obj[RevokedCount])
async def revoke_all_trusted_devices(
    account_id: str,
    issuer_id: str,
    user_id: str,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Forget every trusted device of the user (no body)."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id, for_update=True)
    return envelopes.obj(RevokedCount(revoked_count=await devices.revoke_all(session, user, principal)))


@router.post(ONE + "/trusted-devices", status_code=201, response_model=Obj[DeviceTrusted])
async def create_trusted_device(
    account_id: str,
    issuer_id: str,
    user_id: str,
    body: DeviceCreate,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Trust a device (by fingerprint) until `expires_at` (default 30 days)."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    device = await devices.trust_device(session, user, body, principal)
    return envelopes.created(DeviceTrusted(device_id=device.id, expires_at=device.expires_at),
                             etag_ms=device.version)


@router.delete(ONE + "/trusted-devices/{device_id}", status_code=204)
async def delete_trusted_device(
    account_id: str,
    issuer_id: str,
    user_id: str,
    device_id: str,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Forget one trusted device."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    await devices.revoke_device(session, user, device_id, principal)
    return envelopes.no_content()


@router.get(ONE + "/tokens", response_model=Page[tokens.PersonalTokenListItem])
async def list_personal_tokens(
    account_id: str,
    issuer_id: str,
    user_id: str,
    status: str | None = Query(None, max_length=32),
    params: PageParams = Depends(page_params),
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """The user's personal access tokens, newest first (never their secrets)."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    rows, has_more, cursor = await tokens.list_tokens(session, user, params, status)
    return envelopes.page([tokens.PersonalTokenListItem.of(t) for t in rows], has_more=has_more,
                          next_cursor=cursor)


@router.post(ONE + "/tokens", status_code=201, response_model=Obj[tokens.PersonalTokenCreated])
async def create_personal_token(
    account_id: str,
    issuer_id: str,
    user_id: str,
    body: tokens.TokenCreate,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Mint a personal access token; `token_plain` is in this response only."""
    user = await service.get_user_in_issuer(session, account_id, issuer_id, user_id)
    token, plain = await tokens.create_token(session, user, body,
                                             server_key=request.app.state.secret_key, auth=principal)
    return envelopes.created(tokens.PersonalTokenCreated.model_validate(tokens.with_secret(token, plain)),
                             etag_ms=token.version)


@router.get(TOKENS + "/{token_id}", response_model=Obj[tokens.PersonalTokenOut])
async def get_personal_token(
    account_id: str,
    token_id: str,
    _: Principal = Depends(READ),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """One personal access token of any user of the account."""
    return envelopes.obj(tokens.PersonalTokenOut.of(await tokens.get_token(session, account_id, token_id)))


@router.post(TOKENS + "/{token_id}/revoke", response_model=Obj[tokens.PersonalTokenOut])
async def revoke_personal_token(
    account_id: str,
    token_id: str,
    request: Request,
    body: tokens.TokenRevoke | None = Body(None),
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> JSONResponse:
    """Revoke a personal access token at once (the body, with a reason, is optional)."""
    token = if_match(request, await tokens.get_token(session, account_id, token_id, for_update=True))
    reason = (body.status_reason or body.reason) if body else None
    token = await tokens.revoke_token(session, token, reason, principal)
    return envelopes.obj(tokens.PersonalTokenOut.of(token))


@router.delete(TOKENS + "/{token_id}", status_code=204)
async def delete_personal_token(
    account_id: str,
    token_id: str,
    request: Request,
    principal: Principal = Depends(WRITE),
    session: AsyncSession = Depends(db_session, scope="function"),
) -> Response:
    """Delete a personal access token (its row is gone; it no longer authenticates)."""
    token = if_match(request, await tokens.get_token(session, account_id, token_id, for_update=True))
    await tokens.delete_token(session, token, principal)
    return envelopes.no_content()
