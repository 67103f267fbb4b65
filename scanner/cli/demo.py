"""`mtls-audit demo`: the whole product on a lab it brings along.

A throwaway PKI, nine loopback endpoints with known configurations, a real
inventory file, the real prober and checks, the real reports. The demo then holds
the verdicts against what each endpoint was built to show, so it doubles as a
self-test of the machine it runs on.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click
import trio
import yaml

from mtls_audit.checks.registry import load_checks
from mtls_audit.reports.console import render_identity_matrices, render_summary
from mtls_audit.scanner.cli.exit_codes import MEANINGS, ExitCode, scan_exit_code
from mtls_audit.scanner.cli.outputs import Outputs
from mtls_audit.scanner.cli.pipeline import ScanOutcome, run_scan
from mtls_audit.scanner.engine.engine import ScanOptions
from mtls_audit.scanner.inventory import load_inventory
from mtls_audit.scanner.lab.endpoints import LabEndpoint, demo_endpoints
from mtls_audit.scanner.lab.pki import create_lab_pki
from mtls_audit.scanner.lab.servers import running_lab
from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.model.text import printable
from mtls_audit.scanner.probe import Timeouts

DEMO_OPTIONS = ScanOptions(timeouts=Timeouts(connect=3, handshake=3, post_handshake=1, http=3))


# The lab's PKCS#12 password reaches the inventory as any password does: by the
# name of an environment variable. A fresh one per run; it is printed nowhere.
P12_PASSWORD_ENV = "MTLS_AUDIT_LAB_P12_PASSWORD"


def write_inventory(path: Path, endpoints: list[LabEndpoint], ports: dict[str, int]) -> None:
    inventory = {
        "identities": {
            "lab-client": {"cert": "pki/client.pem", "key": "pki/client.key"},
            "web": {"pkcs12": "pki/web.p12", "password_env": P12_PASSWORD_ENV},
        },
        "issuer": {"cert": "pki/ca.pem", "key": "pki/issuer.key"},
        "defaults": {
            "trust": "pki/ca.pem",
            "identity": "lab-client",
            "expiry_warning_days": 30,
        },
        "targets": [
            {
                "name": endpoint.name,
                "address": f"127.0.0.1:{ports[endpoint.name]}",
                "server_name": endpoint.server_name,
                "tags": ["demo"],
                **endpoint.inventory,
            }
            for endpoint in endpoints
        ],
    }
    header = "# Written by `mtls-audit demo` for its lab; the ports were free when it ran.\n"
    path.write_text(header + yaml.safe_dump(inventory, sort_keys=False))


async def _scan_lab(output_dir: Path, endpoints: list[LabEndpoint], p12_password: str) -> ScanOutcome:
    inventory_path = output_dir / "inventory.yaml"
    checks = load_checks()
    async with running_lab([endpoint.server for endpoint in endpoints]) as ports:
        write_inventory(inventory_path, endpoints, ports)
        environ = {**os.environ, P12_PASSWORD_ENV: p12_password}
        targets = load_inventory(inventory_path, environ, known_checks=[c.id for c in checks])
        reports = demo_outputs(output_dir).reports()
        options = {"demo": True, "post_handshake_wait": DEMO_OPTIONS.timeouts.post_handshake}
        return await run_scan(targets, checks, DEMO_OPTIONS, reports, str(inventory_path), options)


def demo_outputs(output_dir: Path) -> Outputs:
    return Outputs(
        json=output_dir / "report.json",
        html=output_dir / "report.html",
        junit=output_dir / "junit.xml",
        siem="ecs",
        siem_out=str(output_dir / "findings.ecs.ndjson"),
    )


def mismatches(outcome: ScanOutcome, endpoints: list[LabEndpoint]) -> list[str]:
    """Where the scanner disagrees with what the lab was built to show."""
    expected = {endpoint.name: endpoint.expected for endpoint in endpoints}
    problems = []
    for digest in outcome.digests:
        findings = {finding.check: finding for finding in digest.findings}
        for check_id, want in expected[digest.name].items():
            finding = findings.get(check_id)
            got = finding.status.value if finding else "missing"
            if got != want:
                summary = finding.summary if finding else ""
                problems.append(f"{digest.name} {check_id}: expected {want}, got {got} ({printable(summary)})")
    return problems


def run_demo(output_dir: Path, quiet: bool = False) -> int:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        # The SIEM feed appends like a log; a demo run shows exactly one scan.
        (output_dir / "findings.ecs.ndjson").unlink(missing_ok=True)
        pki = create_lab_pki()
        p12_password = secrets.token_urlsafe(16)
        pki.write(output_dir / "pki", p12_password.encode())
        endpoints = demo_endpoints(pki)
        if not quiet:
            click.echo(f"Lab: {len(endpoints)} TLS endpoints on 127.0.0.1, PKI in {output_dir / 'pki'}")
            for endpoint in endpoints:
                click.echo(f"  {endpoint.name:<15} {endpoint.description}")
            click.echo("")
        outcome = trio.run(_scan_lab, output_dir, endpoints, p12_password)
    except (UserError, OSError) as error:
        click.echo(f"mtls-audit: error: demo could not run: {error}", err=True)
        return ExitCode.USAGE

    if not quiet:
        render_summary(outcome.digests)
        render_identity_matrices(outcome.digests)
        click.echo("")
        click.echo("Reports: " + "  ".join(str(path) for _, path in demo_outputs(output_dir).files()))
        click.echo(f"Inventory used: {output_dir / 'inventory.yaml'} (the lab is stopped now)")
    scan_code = scan_exit_code(outcome.digests)
    click.echo(f"`mtls-audit scan` would exit {int(scan_code)} for these findings ({MEANINGS[scan_code]}).")
    problems = mismatches(outcome, endpoints)
    if problems:
        click.echo(f"Demo verdicts differ from what the lab was built to show ({len(problems)}):", err=True)
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        return 1
    total = sum(len(endpoint.expected) for endpoint in endpoints)
    click.echo(f"All {total} verdicts match what the lab was built to show; the demo ran as designed.")
    return 0
