"""Text that came from a server, made safe to show: the page's last line of defence
after autoescaping.

Everything in a report that came from a server (certificate subject, issuer, SANs,
alert text, HTTP reasons, anything a check copied into its evidence) is attacker
controlled. Autoescaping keeps it from being markup; ``finalize`` (Jinja's hook on
every ``{{ expression }}``) also makes control characters, bidi overrides and lone
surrogates visible instead of letting them act on the reader or break the encoding,
and ``line`` shows a newline in a one-line field instead of laying it out.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

# Characters that must not act on the reader: C0/C1 controls (tab and newline are kept;
# one-line fields turn newlines visible separately), DEL, bidi overrides and isolates,
# zero-width and line/paragraph separators, BOM, and lone surrogates (a non-UTF-8 byte
# decoded with surrogateescape), which could not even be encoded.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_UNSAFE_SURROGATE = re.compile("[\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    """The escape a reader would type (``\\x1b``, ``\\u202e``): plain ASCII, so it shows
    in any font, unlike the Control Pictures block."""
    code = ord(match.group())
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def finalize(value: Any) -> Any:
    """Applied by Jinja to every ``{{ expression }}`` before autoescaping."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _UNSAFE.sub(_visible, value)
    return value


def encodable(page_part: str) -> str:
    """Belt and braces for the rendered page: no lone surrogate reaches the encoder."""
    return _UNSAFE_SURROGATE.sub("\ufffd", page_part)


# A large page is written in ASCII, every other character as a numeric character
# reference (which parses back to the same text). Blink decodes an all-ASCII stream on
# a fast path and keeps text in 8 bits a character, where one "\u2713" makes a run of
# text 16 bits: at 10,000 targets a page with a few such characters in every section
# loaded in 2.5 s, Latin-1 only in 1.7 s, ASCII only 10% faster again
# (bench/html_at_scale.py).
_BEYOND_ASCII = re.compile("[^\x00-\x7f]")


def _reference(match: re.Match[str]) -> str:
    return f"&#{ord(match.group())};"


def ascii_only(page_part: str) -> str:
    """A part of the page with every character beyond ASCII as a numeric character
    reference. Only for markup, text and attribute values: not inside <style> or
    <script>, which the page keeps ASCII."""
    return _BEYOND_ASCII.sub(_reference, page_part)


def text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def line(value: Any) -> Any:
    """A one-line field: a newline in it is shown (as ``\\n``), not laid out, so a
    hostile subject cannot pose as two lines. ``None`` stays ``None``."""
    if value is None:
        return None
    return text(value).replace("\r", "\\r").replace("\n", "\\n")
