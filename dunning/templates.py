"""Which email templates exist: the folders of ``email_templates/``, read and nothing more.

Why a module of its own at the package root: the policy store checks that a policy's
email steps name real templates, and the renderer lists them too. Both read the names
from here, so the store never imports the email feature above it and the list cannot
drift from the files.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "email_templates"

REFERENCE_LOCALE = "en"
"""Every template exists in English: it is the fallback of every other locale."""


@cache
def template_names(root: Path = TEMPLATES_DIR) -> tuple[str, ...]:
    """The template names, sorted: one folder each under ``<root>/en/`` (``_*`` are shared)."""
    folder = root / REFERENCE_LOCALE
    return tuple(
        sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_"))
    )
