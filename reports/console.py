"""The terminal summary: one row per target with what did not pass, then one line
per finding that needs attention; then, where it matters, each target's identity
matrix (who got in, on which TLS version).

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

from mtls_audit.scanner.model.report import MatrixCell, MatrixRow, ScanInfo, TargetDigest
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
_WRONG_STYLE = "bold red"


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


def render_identity_matrices(
    targets: Sequence[TargetDigest], stream: TextIO | None = None, width: int | None = None
) -> None:
    """One table per target whose identity matrix has an access rule or a client the
    server treated against the policy; nothing when no target has either.

    A wrong cell is bold red and also reads without colour (a CI log): its outcome in
    capitals and a trailing ``[WRONG]``.
    """
    shown = [target for target in targets if _matrix_matters(target.identity_matrix)]
    if not shown:
        return
    stream = stream or sys.stdout
    if width is None and not stream.isatty():
        width = _LOG_WIDTH
    console = Console(file=stream, width=width, highlight=False, soft_wrap=False)
    for target in shown:
        versions: list[str] = []
        for row in target.identity_matrix:
            versions.extend(cell.version for cell in row.cells if cell.version not in versions)
        table = Table(title=Text(f"identity matrix: {printable(target.name)}"), title_justify="left")
        table.add_column(Text("client"))
        table.add_column(Text("expect"), no_wrap=True)
        for version in versions:
            table.add_column(Text(printable(version)))
        for row in target.identity_matrix:
            by_version = {cell.version: cell for cell in row.cells}
            client_style = "bold" if row.as_expected is False else ""
            table.add_row(
                Text(printable(row.client), style=client_style),
                Text(printable(row.expect) if row.expect else "-", style="" if row.expect else "dim"),
                *(_matrix_cell_text(by_version.get(version)) for version in versions),
            )
        console.print(table)
        wrong = sum(1 for row in target.identity_matrix for cell in row.cells if cell.as_expected is False)
        if wrong:
            cells = f"{wrong} cell{'' if wrong == 1 else 's'}"
            summary = Text(f"WRONG {printable(target.name)}: {cells} against the policy", style=_WRONG_STYLE)
            console.print(summary, soft_wrap=True)


def _matrix_matters(rows: Sequence[MatrixRow]) -> bool:
    return any(row.kind == "rule" or row.as_expected is False for row in rows)


def _matrix_cell_text(cell: MatrixCell | None) -> Text:
    """A cell as text: ``blocked http 403``, ``allowed tls``, ``unknown: <reason>``;
    against the policy ``ALLOWED tls [WRONG]``."""
    if cell is None or cell.observed == "not-probed":
        return Text("-", style="dim")
    observed = printable(cell.observed)
    separator = " " if cell.observed in ("allowed", "blocked") else ": "
    where = f"{separator}{printable(cell.where)}" if cell.where else ""
    if cell.as_expected is False:
        return Text(f"{observed.upper()}{where} [WRONG]", style=_WRONG_STYLE)
    return Text(f"{observed}{where}", style="green" if cell.as_expected else "dim")


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
