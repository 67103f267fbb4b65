"""The `mtls-audit` command as a user runs it: real processes, real lab servers
(in a child process stopped by PID), exit codes, reports, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from mtls_audit.reports.json_report import load_report
from mtls_audit.scanner.model.report import SCHEMA_VERSION

CHECK_IDS = ["client-cert-required", "wrong-ca-rejected", "tls13-only", "chain-complete", "san-match", "expiry-soon"]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "mtls_audit.scanner.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=(os.environ | (env or {})),
        timeout=timeout,
    )


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_inventory(path: Path, lab, names: list[str], extra_targets: list[dict] = (), **defaults) -> Path:
    inventory = {
        "defaults": {
            "trust": str(lab.directory / "pki" / "ca.pem"),
            "identity": {
                "cert": str(lab.directory / "pki" / "client.pem"),
                "key": str(lab.directory / "pki" / "client.key"),
            },
        }
        | defaults,
        "targets": [
            {
                "name": name,
                "address": lab.address(name),
                "server_name": lab.server_names.get(name, "strict.mtls-lab.test"),
            }
            for name in names
        ]
        + list(extra_targets),
    }
    path.write_text(yaml.safe_dump(inventory))
    return path


def test_help_and_version():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("scan", "demo", "checks"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout
    assert run_cli("--version").stdout.startswith("mtls-audit, version")


def test_checks_lists_id_title_severity_and_probes():
    result = run_cli("checks")
    assert result.returncode == 0
    for check_id in CHECK_IDS:
        assert check_id in result.stdout
    assert "critical" in result.stdout and "no-cert" in result.stdout


def test_demo_runs_as_designed_and_writes_valid_reports(tmp_path: Path):
    result = run_cli("demo", "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All 120 verdicts match" in result.stdout  # 12 endpoints x 10 checks
    assert "`mtls-audit scan` would exit 1" in result.stdout
    document = load_report(tmp_path / "out" / "report.json")  # validates against the schema
    assert [t.name for t in document.targets] == [
        "strict", "optional", "no-client-auth", "any-ca", "tls12-allowed", "leaf-only", "wrong-san", "expiring", "http-layer",
        "authz-spiffe", "authz-cn", "no-expiry-check",
    ]  # fmt: skip
    html = (tmp_path / "out" / "report.html").read_text()
    assert all(t.name in html for t in document.targets)
    # The lab's throwaway client key is on disk for the inventory, never in a report.
    key_pem = (tmp_path / "out" / "pki" / "client.key").read_text()
    body = key_pem.splitlines()[1]
    for report in ("report.json", "report.html"):
        assert body not in (tmp_path / "out" / report).read_text()
    assert body not in result.stdout + result.stderr


def test_scan_inventory_exit_1_and_every_target_in_every_report(tmp_path: Path, lab_process, closed_port):
    inventory = write_inventory(
        tmp_path / "inventory.yaml",
        lab_process,
        ["strict", "optional", "silent"],
        extra_targets=[{"name": "down", "address": f"127.0.0.1:{closed_port}", "server_name": "strict.mtls-lab.test"}],
    )
    result = run_cli(
        "scan", str(inventory), "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
        "--handshake-timeout", "1",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    document = load_report(tmp_path / "r.json")
    statuses = {t.name: t.status for t in document.targets}
    assert statuses == {"strict": "pass", "optional": "fail", "silent": "error", "down": "error"}
    html = (tmp_path / "r.html").read_text()
    for name in statuses:
        assert name in html and name in result.stdout
    assert document.scan.inventory == str(inventory)


def test_exit_3_when_nothing_failed_but_a_target_could_not_be_scanned(tmp_path: Path, lab_process, closed_port):
    inventory = write_inventory(
        tmp_path / "inventory.yaml",
        lab_process,
        ["strict"],
        extra_targets=[{"name": "down", "address": f"127.0.0.1:{closed_port}", "server_name": "x.test"}],
    )
    result = run_cli("scan", str(inventory), "--quiet")
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout == ""


def test_fail_on_warn_turns_an_expiry_warning_into_exit_1(tmp_path: Path, lab_process):
    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, ["expiring"])
    assert run_cli("scan", str(inventory), "--quiet").returncode == 0
    assert run_cli("scan", str(inventory), "--quiet", "--fail-on", "warn").returncode == 1


def test_adhoc_scan_of_one_host_port(lab_process):
    pki = lab_process.directory / "pki"
    result = run_cli(
        "scan", lab_process.address("strict"),
        "--ca", str(pki / "ca.pem"), "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key"),
        "--server-name", lab_process.server_names["strict"],
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # Ad hoc there is no issuer and no access rule: the three identity checks skip.
    assert "7/10" in result.stdout


def test_only_selected_checks_run(tmp_path: Path, lab_process):
    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, ["tls12-allowed"])
    result = run_cli("scan", str(inventory), "--check", "san-match", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    findings = load_report(tmp_path / "r.json").targets[0].findings
    assert [f.check for f in findings] == ["san-match"]


def test_encrypted_key_password_never_reaches_any_output(tmp_path: Path, lab_process):
    password = "pw-4e1f-never-print-me"
    key = serialization.load_pem_private_key((lab_process.directory / "pki" / "client.key").read_bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    (tmp_path / "client.key").write_bytes(encrypted)
    inventory = write_inventory(
        tmp_path / "inventory.yaml",
        lab_process,
        ["strict"],
        identity={
            "cert": str(lab_process.directory / "pki" / "client.pem"),
            "key": str(tmp_path / "client.key"),
            "password_env": "LAB_KEY_PASSWORD",
        },
    )
    good = run_cli(
        "scan", str(inventory), "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
        env={"LAB_KEY_PASSWORD": password},
    )  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    wrong = run_cli("scan", str(inventory), env={"LAB_KEY_PASSWORD": "not-it"})
    assert_one_line_error(wrong, "password")
    everything = good.stdout + good.stderr + wrong.stdout + wrong.stderr
    everything += (tmp_path / "r.json").read_text() + (tmp_path / "r.html").read_text()
    assert password not in everything
    assert "not-it" not in wrong.stderr
    assert encrypted.decode().splitlines()[1] not in everything


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["scan", "missing-inventory.yaml"], ["missing-inventory.yaml", "not found"]),
        (["scan", "127.0.0.1:8443"], ["--ca"]),
        (["scan", "127.0.0.1:8443", "--ca", "nope.pem"], ["--ca", "nope.pem"]),
        (["scan", "127.0.0.1:99999", "--ca", "CA"], ["99999"]),
        (["scan", "inv.yaml", "--concurrency", "0"], ["--concurrency"]),
        (["scan", "inv.yaml", "--fail-on", "maybe"], ["--fail-on"]),
        (["scan", "inv.yaml", "--check", "no-such-check"], ["no-such-check"]),
        (["scan", "inv.yaml", "--ca", "CA"], ["--ca", "inventory file"]),
        (["frobnicate"], ["frobnicate"]),
    ],
)
def test_bad_command_lines_get_one_clear_line_and_exit_2(tmp_path: Path, lab_process, args, fragments):
    (tmp_path / "inv.yaml").write_text(
        yaml.safe_dump(
            {
                "defaults": {"trust": str(lab_process.directory / "pki" / "ca.pem")},
                "targets": [{"address": "127.0.0.1:1"}],
            }
        )
    )
    args = [str(lab_process.directory / "pki" / "ca.pem") if a == "CA" else a for a in args]
    result = run_cli(*args, cwd=tmp_path)
    assert_one_line_error_or_click_usage(result, fragments)


def assert_one_line_error_or_click_usage(result, fragments) -> None:
    """click prints a usage line and a hint before its one-line error; ours print one line."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    error_lines = [line for line in result.stderr.splitlines() if "rror" in line]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], (fragment, result.stderr)


def test_bad_inventory_is_one_line_naming_file_target_and_field(tmp_path: Path, lab_process):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "defaults": {"trust": str(lab_process.directory / "pki" / "ca.pem")},
                "targets": [{"name": "payments", "address": "127.0.0.1:8443", "tags": ["a"], "sever_name": "x"}],
            }
        )
    )
    result = run_cli("scan", str(inventory))
    assert_one_line_error(result, "inventory.yaml", "payments", "sever_name")


def test_unwritable_report_path_is_a_usage_error(tmp_path: Path, lab_process):
    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, ["strict"])
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_cli("scan", str(inventory), "--json", str(blocker / "sub" / "r.json"))
    # Found before the scan: one line naming the flag, the path and what is wrong with it
    # (tests/test_outputs.py holds every kind of unwritable path).
    assert_one_line_error(result, "--json", str(blocker / "sub" / "r.json"), f"{blocker} is a file, not a directory")


def test_json_report_written_as_results_stream_is_valid_json(tmp_path: Path, lab_process):
    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, ["strict", "any-ca", "leaf-only"])
    run_cli("scan", str(inventory), "--json", str(tmp_path / "r.json"), "--quiet")
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["schema_version"] == SCHEMA_VERSION == "1.3"
    assert document["summary"]["targets"] == 3
    assert [t["name"] for t in document["targets"]] == ["strict", "any-ca", "leaf-only"]


def test_explain_prints_one_line_per_probe_with_what_came_back(lab_process):
    pki = lab_process.directory / "pki"
    common = ["--ca", str(pki / "ca.pem"), "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key")]
    result = run_cli(
        "explain",
        lab_process.address("tls12-allowed"),
        *common,
        "--server-name",
        lab_process.server_names["tls12-allowed"],
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    impostors = {
        "no-cert@tls1.2", "no-cert@tls1.3", "rogue-ca@tls1.2", "rogue-ca@tls1.3",
        "self-signed@tls1.2", "self-signed@tls1.3",
    }  # fmt: skip
    # Each impostor probe runs --rounds times (default 2); the second attempt is "#2".
    assert set(lines) == {"valid@tls1.0", "valid@tls1.1", "valid@tls1.2", "valid@tls1.3"} | impostors | {
        f"{probe}#2" for probe in impostors
    }
    assert lines["no-cert@tls1.2#2"].endswith("=> blocked at tls-handshake")
    assert "alert 40 handshake_failure in the handshake" in lines["no-cert@tls1.2"]
    assert lines["no-cert@tls1.2"].endswith("=> blocked at tls-handshake")
    assert (
        "alert 116 certificate_required" in lines["no-cert@tls1.3"] and "after the handshake" in lines["no-cert@tls1.3"]
    )
    assert lines["valid@tls1.0"].endswith("=> TLSv1 refused")
    assert "presented no certificate" in lines["no-cert@tls1.3"]
    assert "presented rogue-CA impostor (sha256 " in lines["rogue-ca@tls1.3"]

    http_layer = run_cli(
        "explain", lab_process.address("http-layer"), *common, "--server-name", lab_process.server_names["http-layer"]
    )
    no_cert = next(line for line in http_layer.stdout.splitlines() if "no-cert@tls1.3" in line)
    assert "HTTP 400 Bad Request" in no_cert and no_cert.endswith("=> blocked at http")


def test_progress_is_plain_lines_off_a_terminal_and_nothing_with_quiet(tmp_path: Path, lab_process):
    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, ["strict", "optional"])
    result = run_cli("scan", str(inventory))
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert progress[0].startswith("[1/2] strict ") and progress[0].endswith("PASS")
    assert progress[1].startswith("[2/2] optional ") and "client-cert-required (fail)" in progress[1]
    assert "mtls-audit summary" in result.stdout  # the table comes at the end either way
    quiet = run_cli("scan", str(inventory), "--quiet")
    assert quiet.stdout == "" and quiet.stderr == ""


def test_progress_bar_on_a_terminal(tmp_path: Path, lab_process):
    import pty

    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, ["strict", "optional"])
    primary, secondary = pty.openpty()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "mtls_audit.scanner.cli", "scan", str(inventory)],
            stdout=subprocess.PIPE,
            stderr=secondary,
            text=True,
            timeout=60,
            env=os.environ | {"COLUMNS": "120"},
        )
        os.close(secondary)
        secondary = None
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if secondary is not None:
            os.close(secondary)
        os.close(primary)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert completed.returncode == 1
    assert "scanning" in terminal and "failing" in terminal and "ETA" in terminal
    assert "[1/2]" not in terminal  # a bar, not log lines
    assert "mtls-audit summary" in completed.stdout


def test_ctrl_c_mid_scan_leaves_no_report_and_no_traceback(tmp_path: Path, lab_process):
    import signal
    import time

    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, ["silent"])
    data = yaml.safe_load(inventory.read_text())
    # Distinct server names: the inventory rejects the same address + name twice.
    data["targets"] = [dict(data["targets"][0], name=f"silent-{i}", server_name=f"s{i}.test") for i in range(8)]
    inventory.write_text(yaml.safe_dump(data))
    process = subprocess.Popen(
        [sys.executable, "-m", "mtls_audit.scanner.cli", "scan", str(inventory), "--json", str(tmp_path / "r.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # the silent servers hold every probe in its handshake
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert not (tmp_path / "r.json").exists()
    assert list(tmp_path.glob(".r.json.*")) == []  # the temporary file is gone too
