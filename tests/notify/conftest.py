"""Fixtures for the pure notify tests (rendering: no database, SMTP or network). Modules
that use the ledger say so with ``pytestmark = pytest.mark.usefixtures("services")``."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

import pytest

from dunning.brand import Brand

VOID_TAGS = frozenset({"br", "img", "meta", "hr", "input", "link", "col", "area", "base", "wbr"})


@pytest.fixture
def brand() -> Brand:
    return Brand(company_name="Acme Cloud", support_email="billing@acme.example")


class TagBalance(HTMLParser):
    """Records mismatched or unclosed tags: a broken table wrecks an email in Outlook."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
            return
        self.stack.pop()


def _parse_html(html: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(html)
    parser.close()
    if parser.stack:
        parser.errors.append(f"unclosed tags: {parser.stack}")
    return parser


@pytest.fixture
def parse_html() -> Callable[[str], TagBalance]:
    """Parse rendered HTML; ``.errors`` lists unbalanced tags, ``.tags`` every start tag."""
    return _parse_html
