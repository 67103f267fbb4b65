"""``scan --workers N``: every core of one machine. The scan runs as N shard
processes (``scan --shard K/N``, the very command a CI matrix or a Kubernetes Indexed
Job runs), and their reports are merged, so one machine and a fleet of runners take
the same path.

One process drives its TLS handshakes on one core; the handshakes are CPU-bound on
the client side, so N processes scan about N times as fast on N cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from mtls_audit.reports.json_report import ReportError, open_report
from mtls_audit.scanner.cli.exit_codes import ExitCode
from mtls_audit.scanner.cli.merge import MergedScan, ShardReport, merge_shards
from mtls_audit.scanner.model.errors import UserError

# Below this many targets per process, starting processes costs more than it saves.
MIN_TARGETS_PER_WORKER = 50

# Scan options passed on to every shard process: (option key, flag).
_PASSED_ON = (
    ("rounds", "--rounds"),
    ("connect_timeout", "--connect-timeout"),
    ("handshake_timeout", "--handshake-timeout"),
    ("post_handshake_wait", "--post-handshake-wait"),
    ("http_timeout", "--http-timeout"),
)


def workers_for(requested: int | None, targets: int, per_host: int) -> int:
    """How many shard processes to run: as asked (at most one per target), or by
    default one per CPU when the inventory is big enough to pay for the processes,
    and no more than --per-host: each worker keeps at least one connection per host,
    and a polite scan must not open more to one host than it was told."""
    if requested is not None:
        return max(1, min(requested, targets))
    cpus = os.cpu_count() or 1
    return max(1, min(cpus, targets // MIN_TARGETS_PER_WORKER, per_host))


def shard_command(
    source: str,
    index: int,
    count: int,
    json_path: Path,
    options: dict[str, Any],
    only_checks: Sequence[str],
    triage_flags: Sequence[str],
) -> list[str]:
    """The `scan --shard` command line of one worker. Connection limits are split
    between the workers, so the whole scan keeps to --concurrency and --per-host."""
    command = [sys.executable, "-m", "mtls_audit.scanner.cli", "scan", source, "--shard", f"{index}/{count}"]
    command += ["--json", str(json_path)]
    command += ["--concurrency", str(max(1, options["concurrency"] // count))]
    command += ["--per-host", str(max(1, options["per_host"] // count))]
    for key, flag in _PASSED_ON:
        command += [flag, str(options[key])]
    for check in only_checks:
        command += ["--check", check]
    return command + list(triage_flags)


def run_shard_processes(
    source: str,
    count: int,
    options: dict[str, Any],
    only_checks: Sequence[str],
    triage_flags: Sequence[str],
    *,
    quiet: bool,
    report: Callable[[MergedScan], ExitCode],
) -> ExitCode:
    """Run the ``count`` shards side by side, merge their reports, and hand the merged
    scan to ``report`` while the shard reports still exist (they are read as the
    merged targets stream out)."""
    with tempfile.TemporaryDirectory(prefix="mtls-audit-workers-") as directory:
        paths = [Path(directory) / f"shard-{index}.json" for index in range(count)]
        processes = [
            subprocess.Popen(  # noqa: S603 - our own CLI, arguments as a list
                shard_command(source, index, count, path, options, only_checks, triage_flags),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # each shard's summary: the merged one is printed instead
                stderr=subprocess.PIPE,
                text=True,
            )
            for index, path in enumerate(paths)
        ]
        # Each shard's progress lines (one per finished target when stderr is not a
        # terminal) are passed on, prefixed; the last line is kept for a failure.
        last_lines = [""] * count
        readers = [
            threading.Thread(target=_relay, args=(process, f"[shard {index}/{count}] ", last_lines, index, quiet))
            for index, process in enumerate(processes)
        ]
        try:
            for reader in readers:
                reader.start()
            for process in processes:
                process.wait()
        except BaseException:
            for process in processes:
                process.kill()
            raise
        finally:
            for reader in readers:
                reader.join()
        for index, process in enumerate(processes):
            # 0, 1 and 3 are verdicts; anything else means the shard did not finish.
            if process.returncode not in (0, 1, 3):
                last = last_lines[index] or "no message"
                raise UserError(f"worker for shard {index}/{count} failed (exit {process.returncode}): {last}")
            if not quiet:
                click.echo(f"[shard {index}/{count}] done", err=True)
        try:
            shards = [ShardReport(str(path), open_report(path)) for path in paths]
        except ReportError as error:
            raise UserError(f"a worker's report could not be read: {error}") from None
        return report(merge_shards(shards))


def _relay(process: subprocess.Popen[str], prefix: str, last_lines: list[str], index: int, quiet: bool) -> None:
    assert process.stderr is not None  # opened with stderr=PIPE
    for line in process.stderr:
        line = line.rstrip("\n")
        if line.strip():
            last_lines[index] = line
        if not quiet and line.startswith("["):  # a progress line; the summary goes to stdout
            click.echo(prefix + line, err=True)
