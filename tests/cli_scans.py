"""Scanning a real server through the `mtls-audit` command line, as a user does: an
inventory written next to the test PKI, the CLI run in a subprocess, and the JSON
report read back with each finding's evidence spelled out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from identity_servers import IdentityPKI

from mtls_audit.reports.json_report import load_report


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mtls_audit.scanner.cli", *args],
        capture_output=True,
        text=True,
        env=os.environ | (env or {}),
        timeout=180,
    )


def write_inventory(pki: IdentityPKI, name: str, targets: list[dict], *, issuer: str | None = "client-ca") -> Path:
    """An inventory next to the PKI (paths relative to it, as a user writes them)."""
    inventory: dict = {
        "identities": {
            "payment": {"cert": "payment.pem", "key": "payment.key"},
            "web": {"pkcs12": "web.p12", "password_env": "WEB_P12_PASSWORD"},
            "retired-payment": {"cert": "retired-payment.pem", "key": "retired-payment.key"},
        },
        "defaults": {"trust": "server-ca.pem", "identity": "payment"},
        "targets": targets,
    }
    if issuer:
        inventory["issuer"] = {"cert": f"{issuer}.pem", "key": f"{issuer}.key"}
    path = pki.directory / f"inventory-{name}.yaml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


@dataclass(frozen=True)
class Scan:
    completed: subprocess.CompletedProcess[str]
    report: dict
    path: Path  # the JSON report as written

    def target(self, name: str) -> dict:
        return next(t for t in self.report["targets"] if t["name"] == name)

    def verdicts(self, name: str) -> dict[str, str]:
        return {f["check"]: f["status"] for f in self.target(name)["findings"]}

    def assert_verdicts(self, name: str, expected: dict[str, str]) -> None:
        """Every check's status on target ``name`` is as expected (the summaries
        explain a mismatch), and the exit code is the one they imply."""
        got = self.verdicts(name)
        summaries = {f["check"]: f["summary"] for f in self.target(name)["findings"]}
        assert got == expected, json.dumps(summaries, indent=1)
        exit_code = 1 if "fail" in got.values() else 3 if "error" in got.values() else 0
        assert self.completed.returncode == exit_code, self.completed.stdout

    def finding(self, name: str, check: str) -> dict:
        return next(f for f in self.target(name)["findings"] if f["check"] == check)


def scan(pki: IdentityPKI, inventory: Path, out: Path, *args: str) -> Scan:
    completed = run_cli("scan", str(inventory), "--json", str(out), *args, env={"WEB_P12_PASSWORD": pki.web_password})
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.returncode in (0, 1, 3), (completed.returncode, completed.stdout, completed.stderr)
    return Scan(completed, _spelled_out(out), out)


def _spelled_out(path: Path) -> dict:
    """The JSON report with each finding's evidence and commands as the checks made
    them (the file leaves out what is empty and names probes instead of repeating
    their facts; loading puts them back)."""
    document = load_report(path)
    data = document.to_dict()
    for target, typed in zip(data["targets"], document.targets, strict=True):
        target["findings"] = [
            finding.to_dict() | {"commands": [c.to_dict() for c in finding.commands], "evidence": finding.evidence}
            for finding in typed.findings
        ]
    return data
