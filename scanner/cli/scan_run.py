"""Running a scan for the command line: progress while it runs, the summary, the
reports, and the exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import click
import trio

from mtls_audit.checks.base import Check
from mtls_audit.reports.console import render_identity_matrices, render_summary, render_triage_notes
from mtls_audit.reports.json_report import ReportError, load_report
from mtls_audit.reports.progress import ScanProgress
from mtls_audit.scanner.cli.exit_codes import ExitCode, scan_exit_code
from mtls_audit.scanner.cli.merge import MergedScan
from mtls_audit.scanner.cli.options import recorded_options, scan_options_from
from mtls_audit.scanner.cli.outputs import Outputs, Report
from mtls_audit.scanner.cli.pipeline import ReportFailure, ScanOutcome, run_scan
from mtls_audit.scanner.cli.targets import Selection
from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.model.report import ScanInfo, SummaryCounter, TargetDigest
from mtls_audit.scanner.triage import Baseline, BaselineError, Triage, load_waivers


def fail_usage(message: str) -> NoReturn:
    click.echo(f"mtls-audit: error: {message}", err=True)
    sys.exit(ExitCode.USAGE)


def leaf_exception(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """``error`` itself, or the first exception of ``kind`` inside (nested) groups."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = leaf_exception(inner, kind)
            if found is not None:
                return found
    return None


def load_baseline(path: Path) -> Baseline:
    """Read an earlier JSON report (schema 1.0 or 1.1) as a baseline. Raises
    ``BaselineError`` (one line, naming the file) when it is unreadable, not JSON, not
    the schema, or ambiguous (a target name twice)."""
    try:
        document = load_report(path)
    except ReportError as error:
        raise BaselineError(f"baseline {error}", file=str(path)) from None
    return Baseline.from_document(document, str(path))


def load_triage(baseline: Path | None, waivers: Path | None, known_checks: list[str]) -> Triage | None:
    if baseline is None and waivers is None:
        return None
    return Triage(
        today=datetime.now(UTC).date(),
        baseline=load_baseline(baseline) if baseline is not None else None,
        waivers=load_waivers(waivers, known_checks) if waivers is not None else None,
    )


def execute_scan(
    selection: Selection,
    checks: Sequence[Check],
    options: dict[str, Any],
    outputs: Outputs,
    *,
    triage: Triage | None,
    fail_on_new: bool,
    quiet: bool,
) -> ExitCode:
    targets = selection.targets
    record = recorded_options(options, outputs.fail_on, [check.id for check in checks]) | {"fail_on_new": fail_on_new}
    progress = ScanProgress(len(targets), quiet=quiet)
    reports = outputs.reports()
    try:
        outcome: ScanOutcome = trio.run(
            partial(
                run_scan,
                targets,
                checks,
                scan_options_from(options),
                reports,
                selection.inventory,
                record,
                progress.target_done,
                triage=triage,
                scan_facts=selection.scan_facts(),
            )
        )
    except BaseException as error:
        # trio delivers these inside exception groups from the scan's nurseries.
        progress.close()
        if leaf_exception(error, KeyboardInterrupt):
            appended = " (SIEM events already appended stay, without the scan summary)" if outputs.siem_out else ""
            click.echo(f"mtls-audit: interrupted; no report was written{appended}", err=True)
            sys.exit(130)
        user_error = leaf_exception(error, UserError)
        if user_error is not None:
            fail_usage(str(user_error))
        raise
    finally:
        progress.close()
    return _conclude(outcome.digests, outcome.scan, reports, outcome.failed_reports, outputs, fail_on_new, quiet)


def report_merged(merged: MergedScan, outputs: Outputs, *, fail_on_new: bool, quiet: bool) -> ExitCode:
    """Stream merged shards to every output, print the summary, and give the exit
    code `scan` would give. A report is renamed into place only when complete: a
    shard that turns out bad mid-way leaves none."""
    reports = outputs.reports()
    writers = [report.writer for report in reports]
    digests: list[TargetDigest] = []
    counter = SummaryCounter()
    try:
        for writer in writers:
            writer.start(merged.scan)
        for target in merged.targets:
            for writer in writers:
                writer.add(target)
            counter.add(target)
            digests.append(TargetDigest.of(target))
        for writer in writers:
            writer.finish(merged.scan, counter.summary())
    except OSError as error:
        for writer in writers:
            writer.abort()
        raise UserError(f"cannot write report: {error.filename or ''}: {error.strerror or error}") from None
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return _conclude(digests, merged.scan, reports, [], outputs, fail_on_new, quiet)


def _conclude(
    digests: list[TargetDigest],
    scan: ScanInfo,
    reports: Sequence[Report],
    failed_reports: Sequence[ReportFailure],
    outputs: Outputs,
    fail_on_new: bool,
    quiet: bool,
) -> ExitCode:
    code = scan_exit_code(digests, outputs.fail_on, fail_on_new)
    # NDJSON on stdout must stay machine-readable: people-facing text goes to stderr.
    stream = sys.stderr if outputs.siem_to_stdout else sys.stdout
    if not quiet:
        render_summary(digests, stream=stream)
        render_identity_matrices(digests, stream=stream)
        render_triage_notes(scan, stream=stream)
        failed = {failure.where for failure in failed_reports}
        for report in reports:
            if report.where not in failed and report.where != "stdout":
                click.echo(f"{report.kind} report: {report.where}", file=stream)
    for failure in failed_reports:
        click.echo(
            f"mtls-audit: error: the scan ran, but the {failure.kind} report could not be written: "
            f"{failure.where}: {failure.reason}",
            err=True,
        )
    if failed_reports and code is not ExitCode.FINDINGS:
        # The job asked for a report it will not find: never exit 0.
        return ExitCode.INCOMPLETE
    return code
