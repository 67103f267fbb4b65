"""Putting user input and server text into one-line messages safely.

Inventory and waiver errors quote what the user wrote; console lines quote what a
server sent. Both go to terminals, so control characters are shown as escapes,
never obeyed, and long values are cut.
"""

from __future__ import annotations

from typing import Any


def printable(text: Any) -> str:
    """Control characters (ANSI escapes, newlines, NUL) shown as escapes, not obeyed."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii") for ch in str(text)
    )


def show(value: Any, limit: int = 80) -> str:
    """A value quoted for a one-line message, truncated, control characters escaped."""
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return "'" + printable(text.replace("\\", "\\\\")).replace("'", "\\'") + "'"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
    """How a YAML/JSON value's type reads in a message: "a string", "a list", ..."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string")):
        if isinstance(value, kind):
            return name
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def describe(value: Any) -> str:
    """The type, plus the value when it is a short scalar."""
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 60):
        return f"{type_name(value)} {show(value)}"
    return type_name(value)
