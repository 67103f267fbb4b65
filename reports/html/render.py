"""The Jinja environment and the page template, rendered piece by piece.

Autoescaping is on, every value passes ``escaping.finalize`` first, and a missing key
fails loudly (``StrictUndefined``): the view model is complete by construction. The
page is produced as a stream of chunks (``Template.generate``), so a page for
thousands of targets is written as it is rendered, never held whole; a page in its
on-demand form (``view.INLINE_DETAILS_UP_TO``) spells characters beyond ASCII as
character references (``escaping.ascii_only`` says why).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from mtls_audit.reports.html.escaping import ascii_only, encodable, finalize
from mtls_audit.reports.html.script import FILTER_SCRIPT, content_security_policy


@functools.cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("mtls_audit.reports.html", "templates"),
        autoescape=True,  # every value is escaped unless explicitly marked safe (only the shipped script is)
        undefined=StrictUndefined,  # the view model is complete; a typo should fail loudly
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["pretty_json"] = _pretty_json
    environment.filters["table_columns"] = _table_columns
    environment.tests["plain"] = _plain
    return environment


def render_chunks(report: dict[str, Any]) -> Iterator[str]:
    """The page for a view model (``view.page_view``), in chunks of text."""
    template = _environment().get_template("report.html.j2")
    for chunk in template.generate(
        report=report, script=Markup(FILTER_SCRIPT), csp=content_security_policy(FILTER_SCRIPT)
    ):
        yield ascii_only(encodable(chunk)) if report["on_demand"] else encodable(chunk)


def _pretty_json(value: Any) -> str:
    """Indented JSON as plain text (autoescaping still applies where it is inserted)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _plain(value: Any) -> bool:
    """A value the ``value`` macro writes as it is: a non-empty one-line string, or a
    number (not a boolean, which it writes as a literal)."""
    if isinstance(value, str):
        return bool(value) and "\n" not in value
    return isinstance(value, int | float) and not isinstance(value, bool)


def _table_columns(value: Any) -> list[str]:
    """Column names when ``value`` is a non-empty list of objects (e.g. ``per_version``),
    so it renders as a table; otherwise nothing."""
    if not isinstance(value, list) or not value or not all(isinstance(row, dict) for row in value):
        return []
    columns: list[str] = []
    for row in value:
        for key in row:
            if key not in columns:
                columns.append(key)
    return columns
