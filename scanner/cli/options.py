"""Command-line options shared by several commands, and what they become."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mtls_audit.scanner.cli.exit_codes import FAIL_ON_LEVELS
from mtls_audit.scanner.cli.outputs import SIEM_FLAVORS
from mtls_audit.scanner.engine.engine import ScanOptions
from mtls_audit.scanner.model.target import AppProtocol
from mtls_audit.scanner.probe import Timeouts

F = TypeVar("F", bound=Callable[..., Any])

# Not dir_okay=False: Outputs.check() says what is wrong with a path, in one line.
_REPORT_PATH = click.Path(path_type=Path)


def _apply(decorators: list[Callable[[F], F]], function: F) -> F:
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def scan_options(function: F) -> F:
    """Options shared by `scan` and `explain`: the ad-hoc target, limits and timeouts."""
    return _apply(
        [
            click.option(
                "--ca", type=click.Path(path_type=Path), help="Ad-hoc target: CA bundle that should anchor the server."
            ),
            click.option(
                "--cert",
                type=click.Path(path_type=Path),
                help="Ad-hoc target: client certificate (PEM, chain after the leaf).",
            ),
            click.option("--key", type=click.Path(path_type=Path), help="Ad-hoc target: client private key (PEM)."),
            click.option(
                "--pkcs12",
                type=click.Path(path_type=Path),
                help="Ad-hoc target: client certificate, chain and key in one PKCS#12 bundle (instead of --cert/--key).",
            ),
            click.option(
                "--key-password-env",
                metavar="VAR",
                help="Ad-hoc target: environment variable holding the key's (or the PKCS#12 bundle's) password.",
            ),
            click.option(
                "--server-name", help="Ad-hoc target: SNI and the name the server cert must match (default: the host)."
            ),
            click.option(
                "--probe",
                type=click.Choice([protocol.value for protocol in AppProtocol]),
                help="Ad-hoc target: what to ask after the handshake (default: http; "
                "grpc: a health check over h2; postgres: a StartupMessage as user postgres).",
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
                "--rounds",
                type=click.IntRange(1, 20),
                default=2,
                show_default=True,
                help="Attempts per impostor probe (no certificate, rogue CA, self-signed); any that gets in fails.",
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
        ],
        function,
    )


def report_options(function: F) -> F:
    """Options that choose the reports, shared by `scan` and `report`."""
    return _apply(
        [
            click.option("--html", "html_path", type=_REPORT_PATH, help="Write the HTML report here."),
            click.option(
                "--junit", "junit_path", type=_REPORT_PATH, help="Write JUnit XML here (a testcase per target x check)."
            ),
            click.option(
                "--sarif",
                "sarif_path",
                type=_REPORT_PATH,
                help="Write SARIF 2.1.0 here (code scanning: an alert per finding at its inventory line).",
            ),
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
        ],
        function,
    )


def scan_options_from(options: dict[str, Any]) -> ScanOptions:
    return ScanOptions(
        timeouts=Timeouts(
            connect=options["connect_timeout"],
            handshake=options["handshake_timeout"],
            post_handshake=options["post_handshake_wait"],
            http=options["http_timeout"],
        ),
        concurrency=options["concurrency"],
        per_host=options["per_host"],
        rounds=options["rounds"],
    )


_RECORDED = (
    "concurrency",
    "per_host",
    "rounds",
    "connect_timeout",
    "handshake_timeout",
    "post_handshake_wait",
    "http_timeout",
)


def recorded_options(options: dict[str, Any], fail_on: str, checks: list[str]) -> dict[str, Any]:
    """The options worth keeping in the report: no paths to keys, no passwords."""
    return {name: options[name] for name in _RECORDED} | {"fail_on": fail_on, "checks": checks}
