"""Twilio's request signature (``X-Twilio-Signature``), per its documented algorithm.

The full URL Twilio called (query string included), then every POST parameter sorted
by name (then value), each name and value appended with no delimiter; HMAC-SHA1 of
that keyed by the account's auth token, base64. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def sign(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The signature Twilio sends for a POST of ``params`` to ``url``."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def is_valid(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str | None
) -> bool:
    """Whether ``signature`` is Twilio's for this request (constant-time compare)."""
    if not signature:
        return False
    return hmac.compare_digest(sign(auth_token, url, params), signature)
