"""The terminal summary: one row per target with what did not pass, then one line
per finding that needs attention.

Certificate fields reach these lines (a SAN in a san-match summary), so every
string is printed as plain text (no rich markup) with control characters made
visible: a hostile certificate must not be able to drive the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mtls_audit.scanner.model.text import printable

STATUS_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "error": "magenta", "skip": "dim"}
_LOG_WIDTH = 160  # CI logs do not wrap; a narrower console would fold every line


def status_text(status: str) -> Text:
    return Text(status.upper(), style=STATUS_STYLES.get(status, ""))


def render_summary(targets: Sequence[dict], stream: TextIO | None = None, width: int | None = None) -> None:
    """``targets``: dicts with name, address, status, error and findings
    (check id -> {"status", "summary"})."""
    stream = stream or sys.stdout
    if width is None and not stream.isatty():
        width = _LOG_WIDTH
    console = Console(file=stream, width=width, highlight=False, soft_wrap=False)
    table = Table(title="mtls-audit summary", title_justify="left")
    table.add_column("target", no_wrap=True)
    table.add_column("address", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("passed", justify="right")
    table.add_column("not passing")
    for target in targets:
        findings = target["findings"]
        passed = sum(1 for f in findings.values() if f["status"] == "pass")
        problems = Text()
        for check_id, finding in findings.items():
            if finding["status"] not in ("pass", "skip"):
                if problems:
                    problems.append(", ")
                problems.append(check_id, style=STATUS_STYLES[finding["status"]])
                problems.append(f" ({finding['status']})")
        table.add_row(
            Text(printable(target["name"])),
            Text(printable(target["address"])),
            status_text(target["status"]),
            f"{passed}/{len(findings)}",
            problems,
        )
    console.print(table)

    for target in targets:
        if target["status"] == "error" and target.get("error"):
            line = status_text("error")
            line.append(f" {printable(target['name'])}: could not be scanned: {printable(target['error'])}")
            console.print(line, soft_wrap=True)
            continue
        for check_id, finding in target["findings"].items():
            if finding["status"] in ("fail", "warn", "error"):
                line = status_text(finding["status"])
                line.append(f" {printable(target['name'])} {check_id}: {printable(finding['summary'])}")
                console.print(line, soft_wrap=True)


def render_triage_notes(scan: dict, stream: TextIO | None = None) -> None:
    """Expired and unused waivers, and baseline targets missing from this scan: each
    is a decision someone has to revisit, so the console says so."""
    stream = stream or sys.stdout
    waivers = scan.get("waivers") or {}
    for label, entries in (("expired", waivers.get("expired") or []), ("unused", waivers.get("unused") or [])):
        for entry in entries:
            line = (
                f"WAIVER {label}: {entry.get('target')} {entry.get('check')} "
                f"(owner {entry.get('owner')}, expires {entry.get('expires')})"
            )
            print(printable(line), file=stream)
    missing = (scan.get("baseline") or {}).get("missing_targets") or []
    if missing:
        print(printable(f"BASELINE targets not in this scan: {', '.join(missing)}"), file=stream)
