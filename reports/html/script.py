"""The page's only script (the target filter, and on a large report each target's
details made into elements when opened) and the Content-Security-Policy that allows
exactly it.

The script ships as package data (``reports/html/filter.js``) and is inlined into the
page verbatim; the CSP names it by the SHA-256 of that text, so an edit to the file
changes the hash with it and no other inline script can run. The script must stay
ASCII and must never build HTML from data: it reads ``data-*`` attributes, compares
strings, toggles ``hidden`` and classes and sets ``textContent``. The one markup it
parses is the text of the page's own ``<noscript>`` sections (the on-demand form,
``reports.html.view.INLINE_DETAILS_UP_TO``), which the template escaped like the rest
of the page; it parses it with ``DOMParser``, whose document runs nothing, exactly as
the browser parses it with JavaScript off.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources


def _load_filter_script() -> str:
    script = resources.files("mtls_audit.reports.html").joinpath("filter.js").read_text(encoding="ascii")
    if "</script" in script.lower():
        raise ValueError("filter.js must not contain '</script': it is inlined into the page")
    return script


FILTER_SCRIPT = _load_filter_script()


def script_hash(script: str = FILTER_SCRIPT) -> str:
    """The CSP source (``'sha256-...'``) for exactly this script text."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_security_policy(script: str = FILTER_SCRIPT) -> str:
    return (
        "default-src 'none'; "
        f"script-src {script_hash(script)}; "
        "style-src 'unsafe-inline'; "
        "img-src data:; "
        "base-uri 'none'; "
        "form-action 'none'"
    )
