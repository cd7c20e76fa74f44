"""The `resource:action` scope grammar (SDK-CONTRACT §4.6), for validation and for checks that agree
with what the SDK evaluates locally."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Roles the SDK tests by exact string (is_owner_of / is_admin_of).
ROLE_SCOPES = frozenset({"owner", "admin"})
MAX_SCOPE_LENGTH = 128
MAX_SCOPES = 256

_SEGMENT = r"(?:[A-Za-z0-9_\-]+|\*)"
_SCOPE = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*:(?:[A-Za-z0-9_\-]+|\*|\*\*)$")


def scope_error(scope: object) -> str | None:
    """Why a scope is not acceptable, or None when it is."""
    if not isinstance(scope, str):
        return "a scope must be a string"
    if len(scope) > MAX_SCOPE_LENGTH:
        return f"a scope is at most {MAX_SCOPE_LENGTH} characters"
    if scope in ROLE_SCOPES or _SCOPE.match(scope):
        return None
    return f"'{scope}' is not a resource:action scope"


def _split(scope: str) -> tuple[str, str] | None:
    resource, sep, action = scope.rpartition(":")
    if not sep or not resource or not action:
        return None
    return resource, action


def grants(scope: str, resource: str, action: str) -> bool:
    parsed = _split(scope)
    if parsed is None:
        return False
    s_res, s_act = parsed
    action_ok = s_act in (action, "*", "**")
    if s_res == "*":
        if s_act == "**":
            return True
        return action_ok and "." not in resource
    if s_res == resource:
        return action_ok
    if s_act == "**" and resource.startswith(s_res + "."):
        return True
    return False


def has_access(scopes: Iterable[str], resource: str, action: str) -> bool:
    return any(grants(s, resource, action) for s in scopes)


def within(requested: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The requested scopes that `allowed` does not cover (empty when all are covered)."""
    allowed = list(allowed)
    outside = []
    for scope in requested:
        if scope in allowed:
            continue
        parsed = _split(scope)
        if parsed is None:
            outside.append(scope)
            continue
        res, act = parsed
        # A wildcard request is covered only by an equal or broader wildcard.
        probe_action = "**" if act == "**" else act
        if not any(grants(a, res, probe_action) for a in allowed):
            outside.append(scope)
    return outside
