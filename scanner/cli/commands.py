"""The `mtls-audit` commands.

Every problem with the user's input is a ``UserError``; the group turns it into one
line on stderr and exit code 2, in one place, never a traceback (click's own usage
errors exit 2 as well).
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
import trio

from mtls_audit.checks.base import Check
from mtls_audit.checks.registry import load_checks
from mtls_audit.reports.json_report import ReportError, load_report, open_report
from mtls_audit.reports.writer import render_document
from mtls_audit.scanner import __version__
from mtls_audit.scanner.cli.exit_codes import ExitCode
from mtls_audit.scanner.cli.explain import explain_lines
from mtls_audit.scanner.cli.merge import ShardReport, merge_shards
from mtls_audit.scanner.cli.options import report_options, scan_options, scan_options_from
from mtls_audit.scanner.cli.outputs import Outputs
from mtls_audit.scanner.cli.scan_run import execute_scan, fail_usage, load_triage, report_merged
from mtls_audit.scanner.cli.targets import selection_from, targets_from
from mtls_audit.scanner.cli.workers import MIN_TARGETS_PER_WORKER, run_shard_processes, workers_for
from mtls_audit.scanner.engine.engine import scan as scan_targets
from mtls_audit.scanner.engine.results import TargetResult
from mtls_audit.scanner.inventory.shards import parse_shard
from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.triage import diff_reports


class _Commands(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as error:
            fail_usage(str(error))


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mtls-audit")
def main() -> None:
    """Audit whether TLS endpoints really enforce mutual TLS.

    Connects to every target as several clients (no certificate, the real identity,
    impostors from a rogue CA and self-signed, pinned old protocol versions) and
    reports what each server let in, with evidence you can reproduce with
    `openssl s_client`.

    \b
    Exit codes:
      0  no finding at or above --fail-on
      1  at least one finding at or above --fail-on (default: fail)
      2  usage, inventory, credential or report-path error: nothing was scanned
      3  nothing failed, but some target or check could not be decided (error),
         or a report could not be written after the scan
    """


def outputs_from(json_path: Path | None, html_path, junit_path, sarif_path, siem, siem_out, fail_on: str) -> Outputs:
    outputs = Outputs(
        json=json_path,
        html=html_path,
        junit=junit_path,
        sarif=sarif_path,
        siem=siem,
        siem_out=siem_out,
        fail_on=fail_on,
    )
    outputs.check()
    return outputs


@main.command()
@click.argument("source", metavar="INVENTORY|HOST:PORT")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the JSON report here.")
@report_options
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A previous JSON report: mark findings new, known or resolved.",
)
@click.option("--fail-on-new", is_flag=True, help="With --baseline: only findings new since the baseline fail the job.")
@click.option(
    "--waivers",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML of accepted risks (target, check, reason, owner, expires).",
)
@click.option("--check", "only_checks", multiple=True, metavar="ID", help="Run only this check (repeatable).")
@click.option(
    "--shard",
    "shard_spec",
    metavar="K/N",
    help="Scan only shard K (from 0) of N, chosen by a stable hash of each target's name; `merge` joins the reports.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Run the scan as this many shard processes and merge them "
    f"(default: one per CPU, from {MIN_TARGETS_PER_WORKER} targets per CPU, at most --per-host).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; rely on the exit code and reports.")
@scan_options
def scan(
    source: str,
    json_path,
    html_path,
    junit_path,
    sarif_path,
    siem,
    siem_out,
    fail_on: str,
    baseline,
    fail_on_new: bool,
    waivers,
    only_checks: tuple[str, ...],
    shard_spec: str | None,
    workers: int | None,
    quiet: bool,
    **options,
) -> None:
    """Scan an inventory file, or one HOST:PORT with --ca/--cert/--key."""
    checks = load_checks()
    known = [check.id for check in checks]
    unknown = [check_id for check_id in only_checks if check_id not in known]
    if unknown:
        raise UserError(f"--check: unknown check {unknown[0]!r} (known: {', '.join(known)})", field="--check")
    if fail_on_new and baseline is None:
        raise UserError("--fail-on-new needs --baseline PREVIOUS.json", field="--fail-on-new")
    selected = [check for check in checks if not only_checks or check.id in only_checks]
    shard = None
    if shard_spec is not None:
        if workers is not None:
            raise UserError("--shard and --workers: give one (--shard runs one shard here, --workers all of them)")
        try:
            shard = parse_shard(shard_spec)
        except ValueError as error:
            raise UserError(f"--shard: {error}", field="--shard") from None
    # Everything the user handed us is checked before the first connection.
    outputs = outputs_from(json_path, html_path, junit_path, sarif_path, siem, siem_out, fail_on)
    selection = selection_from(source, options, known, shard)
    triage = load_triage(baseline, waivers, known)
    count = (
        1
        if shard is not None or selection.inventory is None
        else workers_for(workers, len(selection.targets), options["per_host"])
    )
    if count > 1:
        triage_flags = [
            *(["--baseline", str(baseline)] if baseline else []),
            *(["--fail-on-new"] if fail_on_new else []),
        ]
        triage_flags += ["--waivers", str(waivers)] if waivers else []
        sys.exit(
            run_shard_processes(
                source,
                count,
                options,
                only_checks,
                triage_flags,
                quiet=quiet,
                report=partial(report_merged, outputs=outputs, fail_on_new=fail_on_new, quiet=quiet),
            )
        )
    code = execute_scan(selection, selected, options, outputs, triage=triage, fail_on_new=fail_on_new, quiet=quiet)
    sys.exit(code)


@main.command()
@click.argument("shards", metavar="SHARD.json...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the merged JSON report here.")
@report_options
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; rely on the exit code and reports.")
def merge(
    shards: tuple[Path, ...], json_path, html_path, junit_path, sarif_path, siem, siem_out, fail_on: str, quiet: bool
) -> None:
    """Merge the JSON reports of every `scan --shard K/N` of one scan into one report.

    Refuses shards of different inventories or option sets, and duplicate or missing
    shards. Exits as `scan` would for the whole inventory.
    """
    outputs = outputs_from(json_path, html_path, junit_path, sarif_path, siem, siem_out, fail_on)
    documents = []
    for path in shards:
        try:
            documents.append(ShardReport(str(path), open_report(path)))
        except ReportError as error:
            raise UserError(f"shard {error}", file=str(path)) from None
    merged = merge_shards(documents)
    fail_on_new = bool(merged.scan.options.get("fail_on_new", False))
    sys.exit(report_merged(merged, outputs, fail_on_new=fail_on_new, quiet=quiet))


@main.command()
@click.argument("saved", metavar="SAVED.json", type=click.Path(path_type=Path, dir_okay=False))
@report_options
def report(saved: Path, html_path, junit_path, sarif_path, siem, siem_out, fail_on: str) -> None:
    """Re-render a saved JSON report as HTML, JUnit, SARIF or SIEM events, offline."""
    outputs = outputs_from(None, html_path, junit_path, sarif_path, siem, siem_out, fail_on)
    reports = outputs.reports(include_json=False)
    if not reports:
        raise UserError("nothing to write: give --html, --junit, --sarif and/or --siem with --siem-out")
    document = load_report(saved)
    try:
        render_document(document, [report.writer for report in reports])
    except OSError as error:
        raise UserError(f"cannot write report: {error.filename or ''}: {error.strerror or error}") from None
    stream = sys.stderr if outputs.siem_to_stdout else sys.stdout
    for report in reports:
        if report.where != "stdout":
            click.echo(f"{report.kind} report: {report.where}", file=stream)


@main.command()
@click.argument("old", metavar="OLD.json", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("new", metavar="NEW.json", type=click.Path(path_type=Path, dir_okay=False))
def diff(old: Path, new: Path) -> None:
    """What got worse and what got better between two JSON reports.

    Exits 1 when something got worse, 0 otherwise (2 on unreadable input).
    """
    changes = diff_reports(load_report(old), load_report(new))
    for line in changes.format_lines():
        click.echo(line)
    sys.exit(ExitCode.FINDINGS if changes.worse else ExitCode.OK)


@main.command()
@click.argument("source", metavar="HOST:PORT|INVENTORY")
@scan_options
def explain(source: str, **options) -> None:
    """Print every probe, one line each: what was presented, what came back, when.

    Takes the same target options as `scan`; each line's verdict is the one the
    checks use, and the checks' evidence holds the matching `openssl s_client` line.
    """
    checks = load_checks()
    targets, _ = targets_from(source, options, [check.id for check in checks])

    async def probe_all() -> list[TargetResult]:
        send, receive = trio.open_memory_channel[TargetResult](0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scan_targets, targets, checks, scan_options_from(options), send)
            return [result async for result in receive]

    for result in trio.run(probe_all):
        target = result.target
        label = target.address if target.name == target.address else f"{target.name} ({target.address})"
        click.echo(f"{label}, server name {target.server_name}:")
        for line in explain_lines(result.target, result.observations):
            click.echo(f"  {line}")


@main.command(name="checks")
def list_checks() -> None:
    """List the checks: id, title, severity and what they probe."""
    checks: tuple[Check, ...] = load_checks()
    width = max(len(check.id) for check in checks)
    for check in checks:
        probes = ", ".join(["versions", *sorted(need.value for need in check.needs)])
        click.echo(f"{check.id:<{width}}  {check.severity.value:<8}  {check.title}")
        click.echo(f"{'':<{width}}  probes: {probes}")
        click.echo(f"{'':<{width}}  passes when {check.description}")


@main.command()
@click.option(
    "--output",
    "output_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("mtls-audit-demo"),
    show_default=True,
    help="Folder for the lab's PKI, its inventory and the reports.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict check and the exit code.")
def demo(output_dir: Path, quiet: bool) -> None:
    """Scan a built-in lab of loopback TLS servers with known misconfigurations.

    Generates a throwaway PKI, starts the lab, scans it with the real prober, writes
    report.json and report.html, stops the lab, and checks every verdict against
    what the lab was built to show. Exits 0 when they all match.
    """
    from mtls_audit.scanner.cli.demo import run_demo

    sys.exit(run_demo(output_dir, quiet=quiet))


if __name__ == "__main__":
    main()
