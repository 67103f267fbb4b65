"""What every report writer does: take the scan's header, one target at a time, then
the finished scan. Writers see only the model, so a saved JSON report can be
re-rendered later without the scanner or the network."""

from __future__ import annotations

from typing import Protocol

from mtls_audit.scanner.model.report import ReportDocument, ScanInfo, Summary, TargetReport


class ReportWriter(Protocol):
    def start(self, scan: ScanInfo) -> None:
        """Before the first target: the scan as far as it is known (no end yet)."""

    def add(self, target: TargetReport) -> None:
        """One target, in inventory order."""

    def finish(self, scan: ScanInfo, summary: Summary) -> object:
        """After the last target; publishes the report."""

    def abort(self) -> None:
        """Interrupted: leave nothing half-written under the report's name."""


def render_document(document: ReportDocument, writers: list[ReportWriter]) -> None:
    """Re-render a saved report through the streaming writers, offline."""
    for writer in writers:
        writer.start(document.scan)
    try:
        for target in document.targets:
            for writer in writers:
                writer.add(target)
        for writer in writers:
            writer.finish(document.scan, document.summary)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
