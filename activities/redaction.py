"""Keeping credentials out of what a run records.

Text from outside (an LLM provider's error, an HTTP library's message about an MCP server)
becomes an activity's error message, and from there the run's `error`, its events, the
worker's logs and Temporal's history. Providers echo what they were sent (`Authorization:
Bearer sk-...`), and URLs often carry a secret in their query string or user info; so such
text is redacted before it is raised or logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import httpx

REDACTED = "[redacted]"

_SCHEME_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{6,}")
_NAMED_CREDENTIAL = re.compile(
    r"""(?ix)
    \b((?:proxy-)?authorization|x-api-key|api[-_]?key|access[-_]?token|refresh[-_]?token|client[-_]?secret
       |secret|password|passwd)
    (["']?\s*[:=]\s*["']?)
    (?!(?:bearer|basic|token)\s)([^\s"',;&}]+)
    """
)
_KEY_SHAPED = re.compile(r"\b(?:sk|pk|rk|ghp|gho|ghu|ghs|github_pat|xox[abprs]|glpat)[-_][A-Za-z0-9_-]{12,}")
_URL = re.compile(r"""\b[a-z][a-z0-9+.-]*://[^\s'"<>]+""", re.IGNORECASE)


def redacted_url(url: str | httpx.URL) -> str:
    """`url` as logs and errors may show it: scheme://host[:port]/path. A URL is often a
    capability (a webhook's, an MCP server's), its secret in the query string or the user
    info; those never appear."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with `secrets` (values known to be secret), credential-shaped tokens and the
    secret parts of URLs replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _URL.sub(lambda match: redacted_url(match.group()), text)
    text = _SCHEME_CREDENTIAL.sub(rf"\1\2{REDACTED}", text)
    text = _NAMED_CREDENTIAL.sub(rf"\1\2{REDACTED}", text)
    return _KEY_SHAPED.sub(REDACTED, text)


class _RedactedRequestURLs(logging.Filter):
    """httpx logs every request's full URL at INFO ("HTTP Request: POST <url> ..."); this
    filter on its logger shows those URLs as `redacted_url` does."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redacted_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


def keep_url_secrets_out_of_httpx_logs() -> None:
    """Install `_RedactedRequestURLs` on the `httpx` logger (once per process)."""
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _RedactedRequestURLs) for existing in httpx_logger.filters):
        httpx_logger.addFilter(_RedactedRequestURLs())
