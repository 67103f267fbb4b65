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

from mtls_audit.scanner.model.report import ScanInfo, TargetDigest
from mtls_audit.scanner.model.status import Status
from mtls_audit.scanner.model.text import printable

STATUS_STYLES = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "magenta",
    Status.SKIP: "dim",
}
_LOG_WIDTH = 160  # CI logs do not wrap; a narrower console would fold every line


def status_text(status: Status) -> Text:
    return Text(status.value.upper(), style=STATUS_STYLES[status])


def render_summary(targets: Sequence[TargetDigest], stream: TextIO | None = None, width: int | None = None) -> None:
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
        passed = sum(1 for f in target.findings if f.status is Status.PASS)
        problems = Text()
        for finding in target.findings:
            if finding.status not in (Status.PASS, Status.SKIP):
                if problems:
                    problems.append(", ")
                problems.append(printable(finding.check), style=STATUS_STYLES[finding.status])
                problems.append(f" ({finding.status.value})")
        table.add_row(
            Text(printable(target.name)),
            Text(printable(target.address)),
            status_text(target.status),
            f"{passed}/{len(target.findings)}",
            problems,
        )
    console.print(table)

    for target in targets:
        if target.status is Status.ERROR and target.error:
            line = status_text(Status.ERROR)
            line.append(f" {printable(target.name)}: could not be scanned: {printable(target.error)}")
            console.print(line, soft_wrap=True)
            continue
        for finding in target.findings:
            if finding.status.failing:
                line = status_text(finding.status)
                line.append(f" {printable(target.name)} {printable(finding.check)}: {printable(finding.summary)}")
                console.print(line, soft_wrap=True)


def render_triage_notes(scan: ScanInfo, stream: TextIO | None = None) -> None:
    """Expired and unused waivers, and baseline targets missing from this scan: each
    is a decision someone has to revisit, so the console says so."""
    stream = stream or sys.stdout
    if scan.waivers is not None:
        for label, entries in (("expired", scan.waivers.expired), ("unused", scan.waivers.unused)):
            for entry in entries:
                line = (
                    f"WAIVER {label}: {entry.target} {entry.check} "
                    f"(owner {entry.owner}, expires {entry.expires.isoformat()})"
                )
                print(printable(line), file=stream)
    if scan.baseline is not None and scan.baseline.missing_targets:
        names = ", ".join(scan.baseline.missing_targets)
        print(printable(f"BASELINE targets not in this scan: {names}"), file=stream)
