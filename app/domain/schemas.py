"""Account-domain bodies and hostname rules (§2.8). Domains are stored in `accounts.domains` and
serialised as they are stored: every domain action answers with the whole `Account`."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from app.core.validation import StrictModel

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
# At least two labels, and a top-level label that starts with a letter: no IPs, no `localhost`.
_HOST = re.compile(rf"^(?:{_LABEL}\.)+[a-z][a-z0-9-]{{0,62}}(?<!-)$")


def normalize_host(value: str) -> str:
    return value.strip().lower().rstrip(".")


def _host(value: str) -> str:
    host = normalize_host(value)
    if len(host) > 253 or not _HOST.match(host):
        raise ValueError("must be a DNS hostname like login.acme.com")
    return host


Host = Annotated[str, StringConstraints(min_length=1, max_length=254), AfterValidator(_host)]
IssuerId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class DomainAdd(StrictModel):
    host: Host


class DomainAssign(StrictModel):
    issuer_id: IssuerId
