"""The `mtls-audit` command line.

Every problem with the user's input ends as one line on stderr and exit code 2;
never a traceback (click's own usage errors exit 2 as well).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import click
import trio

from mtls_audit.checks.base import Check
from mtls_audit.checks.registry import RegistryError, load_checks
from mtls_audit.scanner import __version__
from mtls_audit.scanner.cli.exit_codes import FAIL_ON_LEVELS, ExitCode, scan_exit_code
from mtls_audit.scanner.cli.outputs import SIEM_FLAVORS, Outputs, render_saved
from mtls_audit.scanner.engine.engine import ScanOptions
from mtls_audit.scanner.engine.pipeline import ScanOutcome, run_scan
from mtls_audit.scanner.inventory.loader import InventoryError, load_inventory, target_from_command_line
from mtls_audit.scanner.model.target import Target
from mtls_audit.scanner.probe.prober import Timeouts
from mtls_audit.scanner.triage.triage import Triage


def fail_usage(message: str) -> NoReturn:
    click.echo(f"mtls-audit: error: {message}", err=True)
    sys.exit(ExitCode.USAGE)


def leaf_exception(error: BaseException, kind: type[BaseException]) -> Any:
    """``error`` itself, or the first exception of ``kind`` inside (nested) groups."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = leaf_exception(inner, kind)
            if found is not None:
                return found
    return None


def registered_checks() -> tuple[Check, ...]:
    try:
        return load_checks()
    except RegistryError as error:
        fail_usage(str(error))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
      2  usage, inventory or credential error
      3  nothing failed, but some target or check could not be decided (error)
    """


def scan_options(function):
    """Options shared by `scan` and anything else that probes."""
    decorators = [
        click.option(
            "--ca",
            "ca",
            type=click.Path(path_type=Path),
            help="Ad-hoc target: CA bundle that should anchor the server certificate.",
        ),
        click.option(
            "--cert",
            type=click.Path(path_type=Path),
            help="Ad-hoc target: client certificate (PEM, chain after the leaf).",
        ),
        click.option("--key", type=click.Path(path_type=Path), help="Ad-hoc target: client private key (PEM)."),
        click.option(
            "--key-password-env", metavar="VAR", help="Ad-hoc target: environment variable holding the key's password."
        ),
        click.option(
            "--server-name", help="Ad-hoc target: SNI and the name the server cert must match (default: the host)."
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 4096),
            default=32,
            show_default=True,
            help="Connections in flight across the scan.",
        ),
        click.option(
            "--per-host",
            type=click.IntRange(1, 256),
            default=4,
            show_default=True,
            help="Connections in flight to one host.",
        ),
        click.option(
            "--connect-timeout",
            type=click.FloatRange(0.1, 300),
            default=5.0,
            show_default=True,
            help="Seconds to establish TCP.",
        ),
        click.option(
            "--handshake-timeout",
            type=click.FloatRange(0.1, 300),
            default=5.0,
            show_default=True,
            help="Seconds for the TLS handshake.",
        ),
        click.option(
            "--post-handshake-wait",
            type=click.FloatRange(0.01, 60),
            default=1.0,
            show_default=True,
            help="Seconds to wait after a TLS 1.3 handshake for a ticket, alert or EOF.",
        ),
        click.option(
            "--http-timeout",
            type=click.FloatRange(0.1, 300),
            default=5.0,
            show_default=True,
            help="Seconds for the HTTP probe's response.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def targets_from(source: str, options: dict[str, Any], known_checks: list[str]) -> tuple[list[Target], str | None]:
    """An inventory file, or HOST:PORT with --ca/--cert/--key."""
    path = Path(source)
    adhoc_flags = [flag for flag in ("ca", "cert", "key", "server_name", "key_password_env") if options.get(flag)]
    try:
        if path.is_file():
            if adhoc_flags:
                names = ", ".join("--" + flag.replace("_", "-") for flag in adhoc_flags)
                fail_usage(f"{names} apply to a HOST:PORT target, not to an inventory file ({source})")
            return list(load_inventory(path, known_checks=known_checks)), str(path)
        if options.get("ca") is None:
            if source.endswith((".yaml", ".yml", ".json")) or "/" in source:
                fail_usage(f"{source}: inventory file not found")
            fail_usage(f"{source}: not an inventory file; a HOST:PORT target needs --ca (and usually --cert/--key)")
        target = target_from_command_line(
            source,
            ca=options["ca"],
            cert=options.get("cert"),
            key=options.get("key"),
            server_name=options.get("server_name"),
            password_env=options.get("key_password_env"),
        )
        return [target], None
    except InventoryError as error:
        fail_usage(str(error))


def build_scan_options(options: dict[str, Any]) -> ScanOptions:
    return ScanOptions(
        timeouts=Timeouts(
            connect=options["connect_timeout"],
            handshake=options["handshake_timeout"],
            post_handshake=options["post_handshake_wait"],
            http=options["http_timeout"],
        ),
        concurrency=options["concurrency"],
        per_host=options["per_host"],
    )


def recorded_options(options: dict[str, Any], fail_on: str, checks: list[str]) -> dict[str, Any]:
    """The options worth keeping in the report: no paths to keys, no passwords."""
    keep = ("concurrency", "per_host", "connect_timeout", "handshake_timeout", "post_handshake_wait", "http_timeout")
    return {name: options[name] for name in keep} | {"fail_on": fail_on, "checks": checks}


def load_triage(baseline: Path | None, waivers: Path | None, known_checks: list[str]) -> Triage | None:
    from mtls_audit.scanner.triage.baseline import BaselineError, load_baseline
    from mtls_audit.scanner.triage.waivers import WaiverError, load_waivers

    if baseline is None and waivers is None:
        return None
    try:
        return Triage(
            today=datetime.now(UTC).date(),
            baseline=load_baseline(baseline) if baseline is not None else None,
            waivers=load_waivers(waivers, known_checks) if waivers is not None else None,
        )
    except (BaselineError, WaiverError) as error:
        fail_usage(str(error))


def execute_scan(
    targets: list[Target],
    checks: tuple[Check, ...],
    options: dict[str, Any],
    outputs: Outputs,
    *,
    inventory: str | None,
    triage: Triage | None,
    fail_on_new: bool,
    quiet: bool,
) -> tuple[ScanOutcome, ExitCode]:
    from mtls_audit.reports.console import render_summary, render_triage_notes
    from mtls_audit.reports.progress import ScanProgress

    check_ids = [check.id for check in checks]
    record = recorded_options(options, outputs.fail_on, check_ids) | {"fail_on_new": fail_on_new}
    progress = ScanProgress(len(targets), quiet=quiet)
    try:
        outcome = trio.run(
            partial(
                run_scan,
                targets,
                checks,
                build_scan_options(options),
                outputs.writers(),
                inventory,
                record,
                progress.target_done,
                triage=triage,
            )
        )
    except BaseException as error:
        # trio delivers these inside exception groups from the scan's nurseries.
        progress.close()
        if leaf_exception(error, KeyboardInterrupt):
            click.echo("mtls-audit: interrupted; no report was written", err=True)
            sys.exit(130)
        os_error = leaf_exception(error, OSError)
        if os_error is not None:  # e.g. a report path we cannot write
            fail_usage(f"cannot write report: {os_error.filename or ''}: {os_error.strerror or os_error}")
        raise
    finally:
        progress.close()
    code = scan_exit_code((d.as_dict() for d in outcome.digests), outputs.fail_on, fail_on_new)
    if not quiet:
        # NDJSON on stdout must stay machine-readable: people-facing text goes to stderr.
        stream = sys.stderr if outputs.siem_to_stdout else sys.stdout
        render_summary([d.as_dict() for d in outcome.digests], stream=stream)
        render_triage_notes(outcome.scan, stream=stream)
        for kind, where in outputs.written():
            click.echo(f"{kind} report: {where}", file=stream)
    return outcome, code


def report_options(function):
    """Options that choose the reports, shared by `scan` and `report`."""
    path = click.Path(path_type=Path, dir_okay=False)
    decorators = [
        click.option("--html", "html_path", type=path, help="Write the HTML report here."),
        click.option("--junit", "junit_path", type=path, help="Write JUnit XML here (a testcase per target x check)."),
        click.option("--siem", type=click.Choice(SIEM_FLAVORS), help="SIEM schema for --siem-out: ECS or OCSF."),
        click.option(
            "--siem-out", metavar="FILE|-", help="Append one NDJSON event per finding (+1 per scan); - is stdout."
        ),
        click.option(
            "--fail-on",
            type=click.Choice(FAIL_ON_LEVELS),
            default="fail",
            show_default=True,
            help="Lowest finding status that fails: exit code 1 for scan, <failure> in JUnit.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def outputs_from(json_path: Path | None, html_path, junit_path, siem, siem_out, fail_on: str) -> Outputs:
    outputs = Outputs(json=json_path, html=html_path, junit=junit_path, siem=siem, siem_out=siem_out, fail_on=fail_on)
    problem = outputs.problem()
    if problem:
        fail_usage(problem)
    return outputs


@main.command()
@click.argument("source", metavar="INVENTORY|HOST:PORT")
@click.option(
    "--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), help="Write the JSON report here."
)
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
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; rely on the exit code and reports.")
@scan_options
def scan(
    source: str,
    json_path,
    html_path,
    junit_path,
    siem,
    siem_out,
    fail_on: str,
    baseline,
    fail_on_new: bool,
    waivers,
    only_checks: tuple[str, ...],
    quiet: bool,
    **options,
) -> None:
    """Scan an inventory file, or one HOST:PORT with --ca/--cert/--key."""
    checks = registered_checks()
    known = [check.id for check in checks]
    unknown = [check_id for check_id in only_checks if check_id not in known]
    if unknown:
        fail_usage(f"--check: unknown check {unknown[0]!r} (known: {', '.join(known)})")
    if fail_on_new and baseline is None:
        fail_usage("--fail-on-new needs --baseline PREVIOUS.json")
    if only_checks:
        checks = tuple(check for check in checks if check.id in only_checks)
    outputs = outputs_from(json_path, html_path, junit_path, siem, siem_out, fail_on)
    targets, inventory = targets_from(source, options, known)
    triage = load_triage(baseline, waivers, known)
    _, code = execute_scan(
        targets, checks, options, outputs, inventory=inventory, triage=triage, fail_on_new=fail_on_new, quiet=quiet
    )
    sys.exit(code)


@main.command()
@click.argument("saved", metavar="SAVED.json", type=click.Path(path_type=Path, dir_okay=False))
@report_options
def report(saved: Path, html_path, junit_path, siem, siem_out, fail_on: str) -> None:
    """Re-render a saved JSON report as HTML, JUnit or SIEM events, offline."""
    from mtls_audit.reports.json_report import ReportError, load_report

    outputs = outputs_from(None, html_path, junit_path, siem, siem_out, fail_on)
    if not outputs.writers(include_json=False):
        fail_usage("nothing to write: give --html, --junit and/or --siem with --siem-out")
    try:
        document = load_report(saved)
    except ReportError as error:
        fail_usage(str(error))
    try:
        render_saved(document, outputs)
    except OSError as error:
        fail_usage(f"cannot write report: {error.filename or ''}: {error.strerror or error}")
    stream = sys.stderr if outputs.siem_to_stdout else sys.stdout
    for kind, where in outputs.written():
        click.echo(f"{kind} report: {where}", file=stream)


@main.command()
@click.argument("old", metavar="OLD.json", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("new", metavar="NEW.json", type=click.Path(path_type=Path, dir_okay=False))
def diff(old: Path, new: Path) -> None:
    """What got worse and what got better between two JSON reports.

    Exits 1 when something got worse, 0 otherwise (2 on unreadable input).
    """
    from mtls_audit.reports.json_report import ReportError, load_report
    from mtls_audit.scanner.triage.baseline import BaselineError, diff_reports

    try:
        changes = diff_reports(load_report(old), load_report(new))
    except (ReportError, BaselineError) as error:
        fail_usage(str(error))
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
    from mtls_audit.scanner.cli.explain import explain_lines
    from mtls_audit.scanner.engine.engine import scan as scan_targets

    checks = registered_checks()
    targets, _ = targets_from(source, options, [check.id for check in checks])

    async def probe_all() -> list:
        send, receive = trio.open_memory_channel(0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scan_targets, targets, checks, build_scan_options(options), send)
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
    checks = registered_checks()
    width = max(len(check.id) for check in checks)
    for check in checks:
        probes = ", ".join(sorted(need.value for need in check.needs))
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
