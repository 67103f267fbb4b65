"""The HTML report: one self-contained file rendered from the JSON report's dict form.

Everything in a report that came from a server (certificate subject, issuer, SANs,
alert text, HTTP reasons, anything a check copied into its evidence) is attacker
controlled, so:

* the template is rendered with autoescaping on, and every value passes through
  ``_finalize`` first, which makes control characters, bidi overrides and lone
  surrogates visible instead of letting them act on the reader or break the encoding;
* ids and anchors are derived from positions rather than names;
* the page loads nothing external, and its Content-Security-Policy allows exactly one
  script: the filter below, by the SHA-256 hash of its text, computed at render time;
* that script never builds HTML: it reads ``data-*`` attributes, compares strings,
  toggles ``hidden`` and sets ``textContent``.

Without JavaScript the page is complete; the filter bar simply stays hidden.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from mtls_audit.reports.atomic import write_atomically

# Statuses the scanner emits, in the order counts are shown.
STATUS_ORDER = ("fail", "error", "warn", "pass", "skip")
# What the page shows: a waived finding is "waived" everywhere, whatever its status.
DISPLAY_ORDER = ("fail", "error", "warn", "waived", "pass", "skip")
_KNOWN_STATUSES = frozenset(DISPLAY_ORDER)
_RANK = {status: rank for rank, status in enumerate(DISPLAY_ORDER)}
_ATTENTION = frozenset({"fail", "error", "warn"})
_BASELINE_MARKERS = ("new", "known", "resolved")
_COMMAND_KEY = "openssl_command"

_CLASSIFICATION_CSS = {"required": "pass", "optional": "fail", "not-requested": "fail", "unknown": "error"}
_BLOCKED_AT = {
    "tls-handshake": "TLS handshake",
    "tls-post-handshake": "right after the TLS 1.3 handshake",
    "http": "HTTP layer",
}

# The only script on the page. It must stay ASCII and must not build HTML from data.
FILTER_SCRIPT = """
(function () {
  "use strict";
  var bar = document.getElementById("filters");
  if (!bar) { return; }
  var text = document.getElementById("f-text");
  var tag = document.getElementById("f-tag");
  var status = document.getElementById("f-status");
  var reset = document.getElementById("f-reset");
  var count = document.getElementById("f-count");
  var none = document.getElementById("f-none");
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-filter-item]"));
  function tagsOf(el) {
    try {
      var parsed = JSON.parse(el.dataset.tags || "[]");
      return Array.isArray(parsed) ? parsed.map(String) : [];
    } catch (e) {
      return [];
    }
  }
  function contains(haystack, needle) {
    return String(haystack || "").toLowerCase().indexOf(needle) !== -1;
  }
  function matches(el, query, wantTag, wantStatus) {
    var tags = tagsOf(el);
    if (query && !contains(el.dataset.name, query) && !contains(el.dataset.address, query) &&
        !tags.some(function (t) { return contains(t, query); })) {
      return false;
    }
    if (wantTag && tags.indexOf(wantTag) === -1) { return false; }
    if (wantStatus && el.dataset.status !== wantStatus &&
        String(el.dataset.flags || "").split(" ").indexOf(wantStatus) === -1) {
      return false;
    }
    return true;
  }
  function apply() {
    var query = text.value.trim().toLowerCase();
    var shown = 0;
    var total = 0;
    items.forEach(function (el) {
      var ok = matches(el, query, tag.value, status.value);
      el.hidden = !ok;
      if (el.tagName === "TR") {
        total += 1;
        if (ok) { shown += 1; }
      }
    });
    count.textContent = shown === total ? "showing all " + total + " targets" : "showing " + shown + " of " + total + " targets";
    none.hidden = shown !== 0;
  }
  text.addEventListener("input", apply);
  text.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { text.value = ""; apply(); }
  });
  tag.addEventListener("change", apply);
  status.addEventListener("change", apply);
  reset.addEventListener("click", function () {
    text.value = "";
    tag.value = "";
    status.value = "";
    apply();
    text.focus();
  });
  bar.hidden = false;
  apply();
})();
"""


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


def _finalize(value: Any) -> Any:
    """Applied by Jinja to every ``{{ expression }}`` before autoescaping."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _UNSAFE.sub(_visible, value)
    return value


@functools.cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("mtls_audit.reports.html", "templates"),
        autoescape=True,  # every value is escaped unless explicitly marked safe (only the constant script is)
        undefined=StrictUndefined,  # the view model below is complete; a typo should fail loudly
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["pretty_json"] = _pretty_json
    environment.filters["table_columns"] = _table_columns
    return environment


def render_html(document: dict[str, Any]) -> str:
    """The report as one HTML page (inline CSS, one hash-pinned inline script, nothing external)."""
    template = _environment().get_template("report.html.j2")
    page = template.render(
        report=_view(document),
        script=Markup(FILTER_SCRIPT),
        csp=content_security_policy(FILTER_SCRIPT),
    )
    return _UNSAFE_SURROGATE.sub("\ufffd", page)  # belt and braces: the page is always encodable


def write_html(document: dict[str, Any], path: Path) -> Path:
    """Render and write atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    html = render_html(document)
    write_atomically(path, html)
    return path


# -- view model ----------------------------------------------------------------------
# The template only sees what is built here, with every key present, so documents with
# empty lists or null optional values (an unreachable target) render the same way.


def _view(document: dict[str, Any]) -> dict[str, Any]:
    raw_scan = document.get("scan")
    scan: dict[str, Any] = raw_scan if isinstance(raw_scan, dict) else {}
    targets = [t for t in (document.get("targets") or []) if isinstance(t, dict)]
    scan_time = _parse_time(scan.get("started"))
    finished = _parse_time(scan.get("finished"))

    check_ids: list[str] = []
    for target in targets:
        for finding in _dicts(target.get("findings")):
            check = _text(finding.get("check"))
            if check not in check_ids:
                check_ids.append(check)
    slugs = _check_slugs(check_ids)
    target_views = [_target_view(i, t, check_ids, slugs, scan_time) for i, t in enumerate(targets)]

    targets_by_status: dict[str, int] = {}
    findings_by_status: dict[str, int] = {}
    for view in target_views:
        targets_by_status[view["status"]] = targets_by_status.get(view["status"], 0) + 1
        for finding in view["findings"]:
            findings_by_status[finding["display"]] = findings_by_status.get(finding["display"], 0) + 1
    new_count = sum(1 for v in target_views for f in v["findings"] if f["baseline"] == "new")
    resolved_count = sum(1 for v in target_views for f in v["findings"] if f["baseline"] == "resolved")

    tags: list[str] = []
    for view in target_views:
        for tag in view["tags"]:
            if tag not in tags:
                tags.append(tag)

    status_options = [
        {"value": s, "label": s, "count": targets_by_status.get(s, 0)}
        for s in STATUS_ORDER
        if targets_by_status.get(s, 0)
    ]
    flag_counts = {flag: sum(1 for v in target_views if flag in v["flags"]) for flag in ("attention", "waived", "new")}
    flag_labels = {
        "attention": "needs attention (fail, error, warn)",
        "waived": "has waived findings",
        "new": "has new findings",
    }
    flag_options = [{"value": flag, "label": flag_labels[flag], "count": n} for flag, n in flag_counts.items() if n]

    return {
        "schema_version": document.get("schema_version"),
        "known_statuses": DISPLAY_ORDER,
        "tool": _line(scan.get("tool")) or "mtls-audit",
        "tool_version": _line(scan.get("tool_version")),
        "started": scan.get("started"),
        "started_display": _display_time(scan.get("started")),
        "finished": scan.get("finished"),
        "duration": _duration(scan_time, finished),
        "inventory": _line(scan.get("inventory")),
        "options": scan.get("options") if isinstance(scan.get("options"), dict) else {},
        "waivers": _waivers_meta(scan.get("waivers")),
        "baseline": _baseline_meta(scan.get("baseline"), new_count, resolved_count),
        "target_count": len(targets),
        "targets_by_status": [{"status": s, "count": targets_by_status.get(s, 0)} for s in STATUS_ORDER]
        + [{"status": s, "count": n} for s, n in targets_by_status.items() if s not in STATUS_ORDER],
        "finding_count": sum(findings_by_status.values()),
        "findings_by_status": [
            {"status": s, "count": findings_by_status.get(s, 0)}
            for s in DISPLAY_ORDER
            if s != "waived" or findings_by_status.get(s)
        ]
        + [{"status": s, "count": n} for s, n in findings_by_status.items() if s not in _KNOWN_STATUSES],
        "new_count": new_count,
        "checks": [{"id": _line(check), "slug": slugs[check]} for check in check_ids],
        "tags": tags,
        "status_options": status_options,
        "flag_options": flag_options,
        "targets": target_views,
    }


def _target_view(
    index: int,
    target: dict[str, Any],
    check_ids: list[str],
    slugs: dict[str, str],
    scan_time: datetime | None,
) -> dict[str, Any]:
    anchor = f"target-{index + 1}"
    findings = []
    used: set[str] = set()
    for finding in _dicts(target.get("findings")):
        check = _text(finding.get("check"))
        finding_anchor = f"{anchor}-{slugs[check]}"
        n = 2
        while finding_anchor in used:  # the same check twice on one target: keep ids unique
            finding_anchor = f"{anchor}-{slugs[check]}-{n}"
            n += 1
        used.add(finding_anchor)
        findings.append(_finding_view(check, finding_anchor, finding))

    cells: list[dict[str, Any] | None] = []
    for check in check_ids:
        matching = [f for f in findings if f["check_raw"] == check]
        if not matching:
            cells.append(None)
            continue
        worst = min(matching, key=lambda f: _RANK.get(f["display"], len(_RANK)))
        title = f"{worst['check']}: "
        if worst["waived"]:
            title += f"waived {worst['status']}"
            if worst["waiver"] and worst["waiver"]["reason"]:
                title += f" ({worst['waiver']['reason']})"
            title += " – "
        title += worst["summary"] or ""
        if len(matching) > 1:
            title += f" (+{len(matching) - 1} more finding{'s' if len(matching) > 2 else ''})"
        cells.append(
            {
                "check": worst["check"],
                "display": worst["display"],
                "anchor": worst["anchor"],
                "title": title,
                "new": any(f["baseline"] == "new" for f in matching),
                "count": len(matching),
            }
        )

    status = _status(target.get("status"))
    flags = []
    if status in _ATTENTION:
        flags.append("attention")
    if any(f["waived"] for f in findings):
        flags.append("waived")
    if any(f["baseline"] == "new" for f in findings):
        flags.append("new")
    tags = [_line(tag) for tag in _list(target.get("tags"))]
    certificates = [_certificate_view(i, c, scan_time) for i, c in enumerate(_dicts(target.get("certificates")))]

    return {
        "number": index + 1,
        "anchor": anchor,
        "name": _line(target.get("name")),
        "address": _line(target.get("address")),
        "server_name": _line(target.get("server_name")),
        "tags": tags,
        "data_tags": json.dumps([_text(tag) for tag in _list(target.get("tags"))]),
        "flags": flags,
        "status": status,
        "error": target.get("error"),
        "accepted_versions": [_line(v) for v in _list(target.get("accepted_versions"))],
        "client_auth": [_client_auth_view(entry) for entry in _dicts(target.get("client_auth"))],
        "certificates": certificates,
        "findings": sorted(findings, key=lambda f: _RANK.get(f["display"], len(_RANK))),
        "passed": sum(1 for f in findings if f["display"] == "pass"),
        "cells": cells,
        "probes": [_probe_view(p) for p in _dicts(target.get("probes"))],
    }


def _client_auth_view(entry: dict[str, Any]) -> dict[str, Any]:
    classification: Any = entry.get("classification")  # untyped JSON, looked up as is
    blocked_at: Any = entry.get("blocked_at")
    return {
        "version": _line(entry.get("version")),
        "classification": _line(classification),
        "css": _CLASSIFICATION_CSS.get(classification, "unknown"),
        "blocked_at": _line(blocked_at),
        "blocked_at_label": _BLOCKED_AT.get(blocked_at),
        "certificate_request_seen": entry.get("certificate_request_seen"),
        "detail": _line(entry.get("detail")),
    }


def _finding_view(check: str, anchor: str, finding: dict[str, Any]) -> dict[str, Any]:
    status = _status(finding.get("status"))
    waived = finding.get("waived") is True
    waiver = finding.get("waiver") if isinstance(finding.get("waiver"), dict) else None
    baseline = finding.get("baseline") if finding.get("baseline") in _BASELINE_MARKERS else None
    evidence = finding.get("evidence")
    evidence = evidence if isinstance(evidence, dict) else {}
    commands, rest = _split_commands(evidence)
    display = "waived" if waived else status
    return {
        "check": _line(check),
        "check_raw": check,
        "anchor": anchor,
        "status": status,
        "display": display,
        "waived": waived,
        "waiver": None
        if waiver is None
        else {
            "reason": _line(waiver.get("reason")),
            "owner": _line(waiver.get("owner")),
            "expires": _line(waiver.get("expires")),
            "expired": waiver.get("expired") is True,
        },
        "baseline": baseline,
        "severity": _line(finding.get("severity")),
        "summary": _line(finding.get("summary")),
        "remediation": _line(finding.get("remediation")),
        "remediation_parts": _inline_code(_line(finding.get("remediation"))),
        "commands": commands,
        "evidence": rest,
        # a passing (or skipped) check keeps its evidence behind a disclosure
        "collapsed": display in ("pass", "skip"),
    }


def _certificate_view(index: int, certificate: dict[str, Any], scan_time: datetime | None) -> dict[str, Any]:
    note = None
    days_left = None
    not_before = _parse_time(certificate.get("not_before"))
    not_after = _parse_time(certificate.get("not_after"))
    if scan_time is not None:
        if not_after is not None and not_after < scan_time:
            note = "expired at scan time"
        elif not_before is not None and not_before > scan_time:
            note = "not yet valid at scan time"
        elif not_after is not None:
            days_left = (not_after - scan_time).days
    subject = _line(certificate.get("subject"))
    issuer = _line(certificate.get("issuer"))
    if index == 0:
        role = "leaf"
    elif subject and subject == issuer:
        role = "self-signed"
    else:
        role = "issuer"
    return {
        "role": role,
        "subject": subject,
        "issuer": issuer,
        "serial": _line(certificate.get("serial")),
        "not_before": certificate.get("not_before"),
        "not_after": certificate.get("not_after"),
        "not_before_date": _display_date(certificate.get("not_before")),
        "not_after_date": _display_date(certificate.get("not_after")),
        "validity_note": note,
        "days_left": days_left,
        "sans": [_line(name) for name in _list(certificate.get("subject_alternative_names"))],
        "sha256": _line(certificate.get("sha256")),
        "pem": certificate.get("pem"),
    }


def _probe_view(probe: dict[str, Any]) -> dict[str, Any]:
    http = probe.get("http") if isinstance(probe.get("http"), dict) else None
    return {
        "probe": probe.get("probe"),
        "negotiated_version": probe.get("negotiated_version"),
        "connected": probe.get("connected"),
        "certificate_request_seen": probe.get("certificate_request_seen"),
        "handshake_completed": probe.get("handshake_completed"),
        "alert_received": _alert_text(probe.get("alert_received")),
        "alert_sent": _alert_text(probe.get("alert_sent")),
        "after_handshake": probe.get("after_handshake"),
        "http": None
        if http is None
        else (
            f"{http.get('status')} {http.get('reason') or ''}".strip()
            if http.get("status") is not None
            else (http.get("error") or "no status")
        ),
        "error": probe.get("connect_error") or probe.get("tls_error"),
        "timed_out": probe.get("timed_out"),
        "total_ms": probe.get("total_ms"),
    }


def _waivers_meta(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {
        "file": _line(value.get("file")),
        "expired": [_waiver_entry(entry) for entry in _list(value.get("expired"))],
        "unused": [_waiver_entry(entry) for entry in _list(value.get("unused"))],
    }


def _waiver_entry(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        return {"text": _line(entry), "target": None, "check": None, "reason": None, "owner": None, "expires": None}
    return {
        "text": None,
        "target": _line(entry.get("target")),
        "check": _line(entry.get("check")),
        "reason": _line(entry.get("reason")),
        "owner": _line(entry.get("owner")),
        "expires": _line(entry.get("expires")),
    }


def _baseline_meta(value: Any, new_count: int, resolved_count: int) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {
        "file": _line(value.get("file")),
        "missing_targets": [_line(name) for name in _list(value.get("missing_targets"))],
        "new": new_count,
        "resolved": resolved_count,
    }


def _inline_code(text: str | None) -> list[dict[str, Any]]:
    """Remediation text split on `backticks` so configuration snippets show as code.
    Unbalanced backticks leave the text as it is."""
    if not text:
        return []
    pieces = text.split("`")
    if len(pieces) % 2 == 0:
        return [{"code": False, "text": text}]
    return [{"code": i % 2 == 1, "text": piece} for i, piece in enumerate(pieces) if piece]


def _alert_text(alert: Any) -> str | None:
    if not isinstance(alert, dict):
        return None
    text = f"{alert.get('name')} ({alert.get('code')})"
    return f"{text} during {alert['phase']}" if alert.get("phase") else text


def _split_commands(evidence: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``openssl_command`` lines (a string or a list of strings), at the top of the
    evidence or in its ``per_version`` / ``probes`` / ``versions`` entries, apart from
    the rest of the evidence.

    Values of an unexpected shape are left where they are and shown with the rest.
    """
    commands: list[dict[str, Any]] = []
    rest = dict(evidence)
    top = _command_lines(rest.get(_COMMAND_KEY))
    if top is not None:
        commands += [{"label": None, "command": line} for line in top]
        del rest[_COMMAND_KEY]
    for key in ("per_version", "probes", "versions"):
        entries_in = rest.get(key)
        if not isinstance(entries_in, list):
            continue
        entries = []
        for entry in entries_in:
            lines = _command_lines(entry.get(_COMMAND_KEY)) if isinstance(entry, dict) else None
            if lines is None:
                entries.append(entry)
                continue
            label = next(
                (_text(entry[k]) for k in ("probe", "version", "tls_version") if entry.get(k) is not None), None
            )
            commands += [{"label": _line(label), "command": line} for line in lines]
            entries.append({k: v for k, v in entry.items() if k != _COMMAND_KEY})
        rest[key] = entries
    return commands, rest


def _command_lines(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(line, str) for line in value):
        return list(value)
    return None


def _pretty_json(value: Any) -> str:
    """Indented JSON as plain text (autoescaping still applies where it is inserted)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


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


def _check_slugs(check_ids: list[str]) -> dict[str, str]:
    """A safe, unique id fragment per check id (third-party ids can contain anything)."""
    slugs: dict[str, str] = {}
    taken: set[str] = set()
    for number, check in enumerate(check_ids, start=1):
        slug = re.sub(r"[^a-z0-9_-]+", "-", check.lower()).strip("-")[:64] or f"check-{number}"
        candidate, n = slug, 2
        while candidate in taken:
            candidate = f"{slug}-{n}"
            n += 1
        taken.add(candidate)
        slugs[check] = candidate
    return slugs


def _status(value: Any) -> str:
    """A status for display; the CSS class only ever comes from the known set."""
    return value if value in _KNOWN_STATUSES else _line(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return []
    return value


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in _list(value) if isinstance(item, dict)]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _line(value: Any) -> Any:
    """A one-line field: a newline in it is shown (as ``\\n``), not laid out, so a
    hostile subject cannot pose as two lines. ``None`` stays ``None``."""
    if value is None:
        return None
    return _text(value).replace("\r", "\\r").replace("\n", "\\n")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _display_time(value: Any) -> str | None:
    parsed = _parse_time(value)
    if parsed is None:
        return _line(value) if value else None
    offset = parsed.utcoffset()
    zone = "UTC" if offset == timedelta(0) else parsed.strftime("UTC%z")
    return parsed.strftime("%Y-%m-%d %H:%M:%S ") + zone


def _display_date(value: Any) -> str | None:
    parsed = _parse_time(value)
    if parsed is None:
        return _line(value) if value else None
    return parsed.strftime("%Y-%m-%d")


def _duration(start: datetime | None, end: datetime | None) -> str | None:
    if start is None or end is None or end < start:
        return None
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s"


class HtmlReportWriter:
    """The streaming-writer interface over ``write_html``: a page needs every target
    before it can be laid out, so this one collects them and renders on ``finish``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._targets: list[dict[str, Any]] = []

    def start(self) -> None:
        self._targets = []

    def add(self, target: dict[str, Any]) -> None:
        self._targets.append(target)

    def finish(self, scan: dict[str, Any], summary: dict[str, Any]) -> Path:
        from mtls_audit.scanner.engine.results import SCHEMA_VERSION

        document = {"schema_version": SCHEMA_VERSION, "scan": scan, "summary": summary, "targets": self._targets}
        return write_html(document, self.path)
