"""How many SMS segments a text costs: GSM-7 160 alone / 153 per part, else UCS-2 70 / 67.

Carriers bill (and some phones show) each segment; one character outside the GSM-7
alphabet (an ``á``, a no-break space, a Chinese character) turns the whole message
into UCS-2 and more than halves what fits. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 basic alphabet, then the extension table (each costs an escape + the char).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Segments:
    """The encoding a text needs, its length in that encoding's units, and the parts."""

    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    parts: int


def is_gsm7(text: str) -> bool:
    """Whether every character fits the GSM-7 alphabet (basic or extension)."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text)


def count(text: str) -> Segments:
    """Segments of ``text`` as a carrier would split it."""
    if is_gsm7(text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    parts = 1 if units <= single else -(-units // part)
    return Segments(encoding, units, parts)
