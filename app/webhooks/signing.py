"""Standard Webhooks signatures (https://www.standardwebhooks.com), made by the `standardwebhooks`
package (the specification's reference library): whsec_ secrets, HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}`, `webhook-signature: v1,<base64> [v1,<base64> ...]`."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """24 random bytes (192 bits), base64 after the whsec_ prefix, as the specification suggests."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body)


def signature_header(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures: during a rotation grace period the old secret signs too, so a
    receiver still configured with it keeps verifying."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


def headers(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, msg_id, timestamp, body),
        "user-agent": "authpi-webhooks/1.0",
    }
