"""Verifying an inbound approval webhook, signed per the Standard Webhooks spec.

Verifying is the `standardwebhooks` library's (`Webhook`): the signature is
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, and a delivery older
or newer than 5 minutes (`TOLERANCE_SECONDS`) is refused. The key is read from the secret as the
worker's signing reads it (`workflows.webhook_targets.signing_key`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import standardwebhooks

from workflows.webhook_targets import signing_key

TOLERANCE_SECONDS = 5 * 60
"""How far a delivery's `webhook-timestamp` may be from now: `standardwebhooks.Webhook`'s fixed
tolerance, which it does not expose."""
STALE = "webhook-timestamp is outside the 5-minute window"
NO_SIGNATURE = "no valid v1 signature"


class WebhookVerificationError(Exception):
    """A missing, wrong or stale signature."""


_REASONS = {
    "Message timestamp too old": STALE,
    "Message timestamp too new": STALE,
    "Invalid Signature Headers": STALE,  # a timestamp after the year 9999
    "No matching signature found": NO_SIGNATURE,
}
"""The library's `WebhookVerificationError` messages (once the headers are present and the
timestamp is digits), as the API answers them."""


def verify(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """Check a delivery's signature and freshness; returns its `webhook-id`."""
    webhook = standardwebhooks.Webhook(signing_key(secret))
    received = {name.lower(): value for name, value in headers.items()}
    webhook_id = received.get("webhook-id")
    timestamp = received.get("webhook-timestamp")
    # The library splits the list of signatures at single spaces only.
    received["webhook-signature"] = " ".join(received.get("webhook-signature", "").split())
    if not webhook_id or not timestamp or not received["webhook-signature"]:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    # The library would also take "1.7e9" or " 1_700_000_000", and check the signature of its floor.
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        raise WebhookVerificationError("webhook-timestamp is not a Unix time in seconds")
    try:
        webhook.verify(body.decode(), received, json_parse=False)
    except UnicodeDecodeError:
        raise WebhookVerificationError("the body is not UTF-8, so its signature cannot be checked") from None
    except standardwebhooks.WebhookVerificationError as err:
        raise WebhookVerificationError(_REASONS.get(str(err), str(err))) from None
    except ValueError:
        # A signature that is not `<version>,<base64>`: the library stops at it.
        raise WebhookVerificationError(NO_SIGNATURE) from None
    return webhook_id
