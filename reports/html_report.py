"""The HTML report: one self-contained file rendered from the JSON report's dict form.

Everything in a report that came from a server (certificate subject, issuer, SANs,
alert text, HTTP reasons, anything a check copied into its evidence) is attacker
controlled, so the template is rendered with autoescaping on, ids and anchors are
derived from positions rather than names, and the page loads nothing external (a
Content-Security-Policy forbids it as a second line of defence).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

STATUS_ORDER = ("fail", "error", "warn", "pass", "skip")
_KNOWN_STATUSES = frozenset(STATUS_ORDER)
_COMMAND_KEY = "openssl_command"


@functools.cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=True,  # every value is escaped unless explicitly marked safe (none is)
        undefined=StrictUndefined,  # the view model below is complete; a typo should fail loudly
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["pretty_json"] = _pretty_json
    environment.filters["table_columns"] = _table_columns
    return environment


def render_html(document: dict[str, Any]) -> str:
    """The report as one HTML page (inline CSS, no scripts, no external resources)."""
    template = _environment().get_template("report.html.j2")
    return template.render(report=_view(document))


def write_html(document: dict[str, Any], path: Path) -> Path:
    """Render and write atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    html = render_html(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
            file.write(html)
        os.replace(name, path)
    except BaseException:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
        raise
    return path


# -- view model ----------------------------------------------------------------------
# The template only sees what is built here, with every key present, so documents with
# empty lists or null optional values (an unreachable target) render the same way.


def _view(document: dict[str, Any]) -> dict[str, Any]:
    scan = document.get("scan") or {}
    targets = [t for t in (document.get("targets") or []) if isinstance(t, dict)]
    summary = document.get("summary") or _summarize(targets)
    scan_time = _parse_time(scan.get("started"))

    check_ids: list[str] = []
    for target in targets:
        for finding in _dicts(target.get("findings")):
            check = _text(finding.get("check"))
            if check not in check_ids:
                check_ids.append(check)
    slugs = _check_slugs(check_ids)

    return {
        "schema_version": document.get("schema_version"),
        "known_statuses": STATUS_ORDER,
        "tool": scan.get("tool") or "mtls-audit",
        "tool_version": scan.get("tool_version"),
        "started": scan.get("started"),
        "finished": scan.get("finished"),
        "inventory": scan.get("inventory"),
        "options": scan.get("options") if isinstance(scan.get("options"), dict) else {},
        "target_count": summary.get("targets", len(targets)),
        "targets_by_status": _ordered_counts(summary.get("targets_by_status")),
        "findings_by_status": _ordered_counts(summary.get("findings_by_status")),
        "checks": [{"id": check, "slug": slugs[check]} for check in check_ids],
        "targets": [_target_view(i, t, check_ids, slugs, scan_time) for i, t in enumerate(targets)],
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
    first_by_check: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for finding in _dicts(target.get("findings")):
        check = _text(finding.get("check"))
        finding_anchor = f"{anchor}-{slugs[check]}"
        n = 2
        while finding_anchor in used:  # the same check twice on one target: keep ids unique
            finding_anchor = f"{anchor}-{slugs[check]}-{n}"
            n += 1
        used.add(finding_anchor)
        evidence = finding.get("evidence")
        evidence = evidence if isinstance(evidence, dict) else {}
        commands, rest = _split_commands(evidence)
        view = {
            "check": check,
            "anchor": finding_anchor,
            "status": _status(finding.get("status")),
            "severity": finding.get("severity"),
            "summary": finding.get("summary"),
            "remediation": finding.get("remediation"),
            "commands": commands,
            "evidence": rest,
        }
        findings.append(view)
        first_by_check.setdefault(check, view)

    cells = []
    for check in check_ids:
        found = first_by_check.get(check)
        cells.append(
            {"check": check, "status": found["status"], "anchor": found["anchor"], "summary": found["summary"]}
            if found
            else None
        )

    return {
        "number": index + 1,
        "anchor": anchor,
        "name": target.get("name"),
        "address": target.get("address"),
        "server_name": target.get("server_name"),
        "tags": [_text(tag) for tag in _list(target.get("tags"))],
        "status": _status(target.get("status")),
        "error": target.get("error"),
        "accepted_versions": [_text(v) for v in _list(target.get("accepted_versions"))],
        "client_auth": [
            {
                "version": entry.get("version"),
                "classification": entry.get("classification"),
                "blocked_at": entry.get("blocked_at"),
                "certificate_request_seen": entry.get("certificate_request_seen"),
                "detail": entry.get("detail"),
            }
            for entry in _dicts(target.get("client_auth"))
        ],
        "certificates": [_certificate_view(c, scan_time) for c in _dicts(target.get("certificates"))],
        "findings": findings,
        "cells": cells,
        "probes": [_probe_view(p) for p in _dicts(target.get("probes"))],
    }


def _certificate_view(certificate: dict[str, Any], scan_time: datetime | None) -> dict[str, Any]:
    note = None
    not_before = _parse_time(certificate.get("not_before"))
    not_after = _parse_time(certificate.get("not_after"))
    if scan_time is not None:
        if not_after is not None and not_after < scan_time:
            note = "expired at scan time"
        elif not_before is not None and not_before > scan_time:
            note = "not yet valid at scan time"
    return {
        "subject": certificate.get("subject"),
        "issuer": certificate.get("issuer"),
        "serial": certificate.get("serial"),
        "not_before": certificate.get("not_before"),
        "not_after": certificate.get("not_after"),
        "validity_note": note,
        "sans": [_text(name) for name in _list(certificate.get("subject_alternative_names"))],
        "sha256": certificate.get("sha256"),
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
        else (f"{http.get('status')} {http.get('reason') or ''}".strip() if http.get("status") is not None
              else (http.get("error") or "no status")),
        "error": probe.get("connect_error") or probe.get("tls_error"),
        "timed_out": probe.get("timed_out"),
        "total_ms": probe.get("total_ms"),
    }


def _alert_text(alert: Any) -> str | None:
    if not isinstance(alert, dict):
        return None
    text = f"{alert.get('name')} ({alert.get('code')})"
    return f"{text} during {alert['phase']}" if alert.get("phase") else text


def _split_commands(evidence: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``openssl_command`` lines (a string or a list of strings), at the top of the
    evidence or in its ``per_version`` entries, apart from the rest of the evidence.

    Values of an unexpected shape are left where they are and shown with the rest.
    """
    commands: list[dict[str, Any]] = []
    rest = dict(evidence)
    top = _command_lines(rest.get(_COMMAND_KEY))
    if top is not None:
        commands += [{"label": None, "command": line} for line in top]
        del rest[_COMMAND_KEY]
    per_version = rest.get("per_version")
    if isinstance(per_version, list):
        entries = []
        for entry in per_version:
            lines = _command_lines(entry.get(_COMMAND_KEY)) if isinstance(entry, dict) else None
            if lines is None:
                entries.append(entry)
                continue
            label = " ".join(_text(entry[k]) for k in ("probe", "version") if entry.get(k) is not None) or None
            commands += [{"label": label, "command": line} for line in lines]
            entries.append({k: v for k, v in entry.items() if k != _COMMAND_KEY})
        rest["per_version"] = entries
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


def _ordered_counts(counts: Any) -> list[dict[str, Any]]:
    counts = counts if isinstance(counts, dict) else {}
    ordered = [{"status": s, "count": counts.get(s, 0)} for s in STATUS_ORDER]
    ordered += [{"status": _status(s), "count": n} for s, n in counts.items() if s not in _KNOWN_STATUSES]
    return ordered


def _summarize(targets: list[dict[str, Any]]) -> dict[str, Any]:
    by_target: dict[str, int] = {}
    by_finding: dict[str, int] = {}
    for target in targets:
        status = _text(target.get("status"))
        by_target[status] = by_target.get(status, 0) + 1
        for finding in _dicts(target.get("findings")):
            status = _text(finding.get("status"))
            by_finding[status] = by_finding.get(status, 0) + 1
    return {"targets": len(targets), "targets_by_status": by_target, "findings_by_status": by_finding}


def _status(value: Any) -> str:
    """A status for display; the CSS class only ever comes from the known set."""
    return value if value in _KNOWN_STATUSES else _text(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        return []
    return value


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in _list(value) if isinstance(item, dict)]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


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
        from scanner.results import SCHEMA_VERSION

        document = {"schema_version": SCHEMA_VERSION, "scan": scan, "summary": summary, "targets": self._targets}
        return write_html(document, self.path)
