"""The company's face in every email and page: name, support address, logo, colour.

One object, validated once when the settings load (``Settings`` builds it), because
it lands inside HTML attributes and CSS, where autoescaping alone does not stop a
``javascript:`` URL or a stray ``;`` in a colour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")


def require_http_url(value: object, name: str) -> None:
    """Links go into ``href``/``src``: only absolute http(s) URLs, never ``javascript:``."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"{name} must be an absolute http(s) URL, got {value!r}")


@dataclass(frozen=True)
class Brand:
    """Sender branding shown in every email's layout and on the customer's pages."""

    company_name: str
    support_email: str
    logo_url: str | None = None
    accent_color: str = "#635bff"

    def __post_init__(self) -> None:
        if not self.company_name.strip():
            raise ValueError("company_name must not be empty")
        email = self.support_email
        if "@" not in email or any(ch.isspace() for ch in email) or any(c in email for c in '<>"'):
            raise ValueError(f"support_email is not an email address: {email!r}")
        if self.logo_url is not None:
            require_http_url(self.logo_url, "logo_url")
        if not _HEX_COLOUR.fullmatch(self.accent_color):
            raise ValueError(f"accent_color must be #rgb or #rrggbb, got {self.accent_color!r}")
