"""One scan from targets to written reports: the pipeline `scan` and `demo` share.

Results stream from the engine through triage to every writer as they arrive; only
a small digest per target is kept, for the console summary and the exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import trio

from mtls_audit.checks.base import Check
from mtls_audit.reports.writer import ReportWriter
from mtls_audit.scanner import __version__
from mtls_audit.scanner.cli.outputs import Report
from mtls_audit.scanner.engine.engine import ScanOptions, scan
from mtls_audit.scanner.engine.results import TargetResult
from mtls_audit.scanner.model.report import ScanInfo, Summary, SummaryCounter, TargetDigest, TargetReport
from mtls_audit.scanner.model.target import Target
from mtls_audit.scanner.triage import Triage


@dataclass(frozen=True)
class ReportFailure:
    """A report that could not be written (disk full, a directory removed mid-scan):
    the scan still ran, and the other reports still hold it."""

    kind: str
    where: str
    reason: str


@dataclass(frozen=True)
class ScanOutcome:
    digests: list[TargetDigest]
    summary: Summary
    scan: ScanInfo
    failed_reports: list[ReportFailure]


class _Reports:
    """The reports of one scan. One whose writer fails with an OSError is dropped and
    remembered; the scan and the other reports go on."""

    def __init__(self, reports: Sequence[Report]) -> None:
        self.active = list(reports)
        self.failed: list[ReportFailure] = []

    def each(self, action: Callable[[ReportWriter], object]) -> None:
        for report in list(self.active):
            try:
                action(report.writer)
            except OSError as error:
                self.active.remove(report)
                report.writer.abort()
                self.failed.append(ReportFailure(report.kind, report.where, error.strerror or str(error)))

    def abort(self) -> None:
        for report in self.active:
            report.writer.abort()


async def run_scan(
    targets: Sequence[Target],
    checks: Sequence[Check],
    options: ScanOptions,
    reports: Sequence[Report],
    inventory: str | None,
    option_record: Mapping[str, Any],
    on_result: Callable[[TargetDigest], None] = lambda digest: None,
    triage: Triage | None = None,
    scan_facts: Mapping[str, Any] | None = None,
) -> ScanOutcome:
    """``scan_facts``: more ScanInfo fields (the inventory's digest, the shard)."""
    header = ScanInfo(
        started=datetime.now(UTC),
        finished=None,
        tool_version=__version__,
        inventory=inventory,
        options=option_record,
        checks=tuple(check.info for check in checks),
        **(scan_facts or {}),
    )
    outputs = _Reports(reports)
    try:
        outputs.each(lambda writer: writer.start(header))
        digests, counter = await _stream_results(targets, checks, options, outputs, header.started, on_result, triage)
        scan_info = replace(header, finished=datetime.now(UTC))
        if triage is not None:
            scan_info = triage.complete(scan_info, (digest.name for digest in digests))
        summary = counter.summary()
        outputs.each(lambda writer: writer.finish(scan_info, summary))
    except BaseException:
        # Interrupted or failed: no half-written report under its final name.
        outputs.abort()
        raise
    return ScanOutcome(digests, summary, scan_info, outputs.failed)


def _add(writer: ReportWriter, target: TargetReport) -> None:
    writer.add(target)


async def _stream_results(
    targets: Sequence[Target],
    checks: Sequence[Check],
    options: ScanOptions,
    outputs: _Reports,
    started: datetime,
    on_result: Callable[[TargetDigest], None],
    triage: Triage | None,
) -> tuple[list[TargetDigest], SummaryCounter]:
    digests: list[TargetDigest] = []
    counter = SummaryCounter()
    send, receive = trio.open_memory_channel[TargetResult](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scan, targets, checks, options, send, started)
        async with receive:
            async for result in receive:
                report = triage.apply(result.report) if triage is not None else result.report
                outputs.each(partial(_add, target=report))
                counter.add(report)
                digest = TargetDigest.of(report)
                digests.append(digest)
                on_result(digest)
    return digests, counter
