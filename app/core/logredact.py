"""The log's second line of defence: whatever a log call carries, secrets and personal data in it
are masked before any handler sees the record.

The first line is not logging them at all (the engine runs with `hide_parameters=True`, so a failed
statement never prints its parameters). This catches what slips through anyway: a driver message
that quotes a row ("Key (username)=(ada) already exists", "Failing row contains (...)"), a hash, a
secret with one of our prefixes, a JWT, an Authorization header, a bearer token.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

MASK = "[redacted]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # argon2 PHC strings ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    (re.compile(r"\$argon2(?:id|i|d)\$[^\s'\",)\]}]*"), MASK),
    # Secrets minted here: API keys, agent secrets, webhook secrets, refresh tokens, personal tokens.
    (re.compile(r"\b(?:sk|agts|whsec|rt|tok)_[A-Za-z0-9_\-+/=]{8,}"), MASK),
    # JWTs (JWS compact: three base64url parts, the header starting with '{"' -> 'eyJ').
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), MASK),
    # Authorization / Cookie headers and bare scheme credentials.
    (re.compile(r"(?i)\b(authorization|proxy-authorization|cookie|set-cookie)(['\"]?\s*[:=,]\s*['\"]?)"
                r"[^'\"\n]*"), r"\1\2" + MASK),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + MASK),
    # PostgreSQL quoting row values back: unique violations and check/not-null failures.
    (re.compile(r"(Key \([^)]*\)=\().*?(\) (?:already exists|is not present|conflicts))"),
     r"\1" + MASK + r"\2"),
    (re.compile(r"(Failing row contains \().*(\))"), r"\1" + MASK + r"\2"),
    # SQLAlchemy's parameter echo, should a statement be logged by an engine without hide_parameters.
    (re.compile(r"(\[parameters: ).*?(\]\n|\]$|\]\s*\(Background)", re.S), r"\1" + MASK + r"\2"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_installed = False


def install_log_redaction() -> None:
    """Wrap the process's LogRecord factory (every logger, every handler, idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if isinstance(record.args, tuple) and record.name == "uvicorn.access":
            # Its formatter unpacks the arguments: mask them one by one and keep their types.
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
            return record
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatters use exc_text when it is set: hand them the masked traceback.
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
