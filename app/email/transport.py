"""Where a rendered message goes: an SMTP server (aiosmtplib), or in development without one, an
`.eml` file under {AUTHPI_DATA_DIR}/mail/ (the log names only the file: bodies hold link tokens)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from app.config import Settings

log = logging.getLogger("authpi.email")

STARTTLS = {"required": True, "true": True, "yes": True, "1": True,
            "false": False, "no": False, "0": False, "off": False, "opportunistic": None}


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    use_tls: bool
    start_tls: bool | None  # None: STARTTLS when the server offers it
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    """smtp://[user:pass@]host[:587][?starttls=required|opportunistic|false] or
    smtps://[user:pass@]host[:465] (TLS from the first byte). Raises ValueError, naming no secret."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("must be smtp://user:password@host:port or smtps://user:password@host:port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls"}
    if unknown:
        raise ValueError(f"has unknown options: {', '.join(sorted(unknown))} (only starttls)")
    tls = parts.scheme == "smtps"
    start_tls: bool | None = None
    if "starttls" in query:
        if tls:
            raise ValueError("smtps:// is TLS already; starttls applies to smtp:// only")
        value = query["starttls"].lower()
        if value not in STARTTLS:
            raise ValueError("starttls must be required, opportunistic or false")
        start_tls = STARTTLS[value]
    return SmtpTarget(hostname=parts.hostname, port=port or (465 if tls else 587), use_tls=tls,
                      start_tls=False if tls else start_tls,
                      username=unquote(parts.username) if parts.username else None,
                      password=unquote(parts.password) if parts.password else None)


def email_problem(settings: Settings) -> str | None:
    """Why mail cannot be delivered with these settings (None: it can)."""
    if settings.smtp_url:
        return None
    if settings.env == "production":
        return ("email is not configured: set AUTHPI_SMTP_URL (production sends no mail without it; "
                "the development mailbox folder is for development only)")
    return None


def check_email_settings(settings: Settings) -> str | None:
    """A configuration mistake in the email settings, for the start-up checks (None: fine)."""
    if settings.smtp_url:
        try:
            parse_smtp_url(settings.smtp_url)
        except ValueError as exc:
            return f"AUTHPI_SMTP_URL {exc}"
    _, address = parseaddr(settings.email_from)
    if "@" not in address:
        return ("AUTHPI_EMAIL_FROM must be an address such as 'Acme <no-reply@acme.example>', "
                f"got {settings.email_from!r}")
    if settings.email_templates_dir is not None and not settings.email_templates_dir.is_dir():
        return f"AUTHPI_EMAIL_TEMPLATES_DIR is not a directory: {settings.email_templates_dir}"
    return None


def mailbox_dir(settings: Settings) -> Path:
    return settings.data_dir / "mail"


async def transmit(settings: Settings, message: EmailMessage, file_stem: str) -> None:
    """Send it (raises on failure; aiosmtplib.SMTPRecipientsRefused for refused recipients)."""
    if settings.smtp_url:
        target = parse_smtp_url(settings.smtp_url)
        await aiosmtplib.send(message, hostname=target.hostname, port=target.port,
                              use_tls=target.use_tls, start_tls=target.start_tls,
                              username=target.username, password=target.password,
                              timeout=settings.smtp_timeout_seconds)
        return
    problem = email_problem(settings)
    if problem:
        raise RuntimeError(problem)
    folder = mailbox_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    # Named by the outbox row: a retry after a crash rewrites the same file, not a second one.
    path = folder / f"{file_stem}.eml"
    tmp = folder / f".{file_stem}.tmp"
    tmp.write_bytes(bytes(message))
    os.replace(tmp, path)
    log.info("email written to the development mailbox: %s", path)
