"""The HTML report: one self-contained page, written as the scan streams past.

Everything in a report that came from a server is attacker controlled, so the page is
rendered with autoescaping and ``escaping.finalize`` (``reports.html.render``), ids and
anchors come from positions (``reports.html.view``), the page loads nothing external,
and its Content-Security-Policy allows exactly one script, the filter shipped as
``filter.js``, by the hash of its text (``reports.html.script``). Without JavaScript the
page is complete; the filter bar simply stays hidden. A report of many targets is
written in the page's on-demand form (``reports.html.view``; the template's header says
how), which loads 10,000 targets in under two seconds (``bench/html_at_scale.py``).

A page can only be laid out once every target is known (the header counts them, the
matrix has a column per check seen anywhere), but a scan of 10,000 targets must not
hold 10,000 reports: ``HtmlReportWriter.add`` keeps a ``PageTally`` (counters, tags,
check ids) and parks the target itself in a spill file next to the destination;
``finish`` renders the page into a temporary file, reading the targets back from the
spill file as the template walks them, and renames it into place. ``abort`` deletes
both temporary files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from mtls_audit.reports.atomic import AtomicFile
from mtls_audit.reports.html.render import render_chunks
from mtls_audit.reports.html.script import FILTER_SCRIPT, content_security_policy, script_hash
from mtls_audit.reports.html.view import PageTally, page_view
from mtls_audit.reports.spill import SpillingWriter
from mtls_audit.scanner.model.report import SCHEMA_VERSION, ReportDocument, ScanInfo, Summary, TargetReport

__all__ = [
    "FILTER_SCRIPT",
    "HtmlReportWriter",
    "content_security_policy",
    "render_html",
    "script_hash",
    "write_html",
]


def render_html(document: ReportDocument) -> str:
    """The report as one HTML page (inline CSS, one hash-pinned inline script, nothing external)."""
    return "".join(_chunks(document.scan, document.schema_version, _tally(document.targets), lambda: document.targets))


def write_html(document: ReportDocument, path: Path) -> Path:
    """Render a whole document into ``path`` (a temporary file in the same directory, then rename)."""
    writer = HtmlReportWriter(path, schema_version=document.schema_version)
    writer.start(document.scan)
    try:
        for target in document.targets:
            writer.add(target)
        return writer.finish(document.scan, document.summary)
    except BaseException:
        writer.abort()
        raise


class HtmlReportWriter(SpillingWriter):
    """Streams targets into an HTML page at ``path``: ``start(scan)``, ``add(target)``
    per target, ``finish(scan, summary)``; ``abort()`` leaves nothing behind."""

    def __init__(self, path: Path | str, *, schema_version: str = SCHEMA_VERSION) -> None:
        super().__init__(path)
        self.schema_version = schema_version
        self.tally = PageTally()

    def start(self, scan: ScanInfo) -> None:
        self._open_spill()

    def add(self, target: TargetReport) -> None:
        """Count the target and park it on disk until ``finish()``."""
        spill = self._parked()
        self.tally.add(target)
        spill.append(target.to_dict(compact=False))  # read back in finish(): no time spent on size

    def finish(self, scan: ScanInfo, summary: Summary | None = None) -> Path:
        """Render the page into a temporary file and publish it under ``path``."""
        spill = self._parked()

        def targets() -> Iterable[TargetReport]:
            return (TargetReport.from_dict(record) for record in spill)

        page = AtomicFile(self.path)
        try:
            _write_chunks(page.file, _chunks(scan, self.schema_version, self.tally, targets))
            page.commit()
        except BaseException:
            page.abort()
            raise
        finally:
            self._close()
        return self.path


def _tally(targets: Iterable[TargetReport]) -> PageTally:
    tally = PageTally()
    for target in targets:
        tally.add(target)
    return tally


def _chunks(
    scan: ScanInfo, schema_version: str, tally: PageTally, targets: Callable[[], Iterable[TargetReport]]
) -> Iterable[str]:
    return render_chunks(page_view(scan, schema_version, tally, targets))


def _write_chunks(file: IO[str], chunks: Iterable[str]) -> None:
    for chunk in chunks:
        file.write(chunk)
