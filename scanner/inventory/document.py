"""Reading an inventory file into plain data: YAML (strict: a repeated key is an
error) or, for a ``.json`` file, JSON. Every failure is an InventoryError naming the
file, and for syntax errors the line and column."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mtls_audit.scanner import strict_yaml
from mtls_audit.scanner.inventory.errors import InventoryError
from mtls_audit.scanner.model.text import show

# Where str.splitlines() splits, so line numbers count as they always have.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_UNQUOTED_IPV6 = re.compile(r"address\s*:\s*\[[0-9A-Fa-f]*:")


def read_document(path: Path, source: str) -> tuple[Any, list[int]]:
    """The parsed file, and the line of each target entry (YAML; empty for JSON);
    ``source`` is how messages name it."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InventoryError(f"cannot read {source}: {error.strerror or type(error).__name__}", source=source) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InventoryError(f"{source}: not UTF-8 text (bad byte at offset {error.start})", source=source) from None
    if path.suffix.lower() == ".json":
        return _parse_json(text, source), []
    del text  # the YAML parser reads the bytes: one copy of a large file, not three
    return _parse_yaml(raw, source)


def _parse_json(text: str, source: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"duplicate key {show(key)}")
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as error:
        raise InventoryError(
            f"{source}: JSON syntax error at line {error.lineno}, column {error.colno}: {error.msg}",
            source=source,
        ) from None
    except ValueError as error:
        raise InventoryError(f"{source}: {error}", source=source) from None


def _parse_yaml(raw: bytes, source: str) -> tuple[Any, list[int]]:
    loader = strict_yaml.StrictSafeLoader(raw)
    try:
        return loader.get_single_data(), strict_yaml.entry_lines(loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = error.problem or error.context or "invalid YAML"
        if mark is not None and _UNQUOTED_IPV6.search(_line(raw.decode("utf-8-sig"), mark.line)):
            what += "; quote IPv6 addresses in YAML: address: '[::1]:8443'"
        raise InventoryError(f"{source}: invalid YAML{where}: {what}", source=source) from None
    except (yaml.YAMLError, ValueError) as error:
        # ValueError: a scalar with an explicit tag it does not fit, as in `!!int x`.
        reason = str(error).splitlines()[0] if str(error) else "invalid YAML"
        raise InventoryError(f"{source}: YAML error: {reason}", source=source) from None
    finally:
        loader.dispose()


def _line(text: str, number: int) -> str:
    """Line ``number`` (from 0) of ``text``, as ``text.splitlines()[number]`` would give
    it ("" past the end), without splitting a large file into a list of lines."""
    breaks = start = 0
    for match in _LINE_BREAK.finditer(text):
        if breaks == number:
            return text[start : match.start()]
        breaks += 1
        start = match.end()
    return text[start:] if breaks == number else ""
