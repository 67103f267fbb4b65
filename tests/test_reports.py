"""The JSON report (streaming writer, schema, loader) and the HTML rendering of it."""

from __future__ import annotations

import copy
import html
import json
import re
from typing import Any

import jsonschema
import pytest

from mtls_audit.reports.html.script import FILTER_SCRIPT
from mtls_audit.reports.html.writer import render_html, write_html
from mtls_audit.reports.json_report import JsonReportWriter, ReportError, load_report, schema
from mtls_audit.scanner.model.finding import ReproCommand
from mtls_audit.scanner.model.report import ReportDocument, ScanInfo, Summary

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64
CHECK_IDS = [
    "client-cert-required",
    "wrong-ca-rejected",
    "tls13-only",
    "chain-complete",
    "san-match",
    "expiry-soon",
]


def _probe(presented: str, version: str, short: str, **overrides: Any) -> dict[str, Any]:
    probe = {
        "probe": f"{presented}@{short}",
        "presented": presented,
        "pinned_version": version,
        "address": "10.0.0.5:8443",
        "sni": "payments.internal",
        "client_certificate_sha256": SHA_C if presented != "no-cert" else None,
        "connected": True,
        "connect_error": None,
        "server_hello_seen": True,
        "handshake_completed": True,
        "negotiated_version": version,
        "cipher": "TLS_AES_256_GCM_SHA384",
        "certificate_request_seen": True,
        "client_ca_names": ["CN=Internal Client CA,O=Example"],
        "alert_received": None,
        "alert_sent": None,
        "tls_error": None,
        "after_handshake": "ticket",
        "session_ticket_received": True,
        "http": {"request_line": "GET / HTTP/1.1", "status": 200, "reason": "OK", "at_ms": 12.5, "error": None},
        "timed_out": None,
        "peer_chain_sha256": [SHA_A, SHA_B],
        "connect_ms": 1.2,
        "handshake_ms": 8.9,
        "total_ms": 14.0,
    }
    probe.update(overrides)
    return probe


def _finding(
    check: str, status: str, severity: str, summary: str, commands: tuple[tuple[str, str], ...] = (), **evidence: Any
) -> dict[str, Any]:
    return {
        "check": check,
        "status": status,
        "severity": severity,
        "summary": summary,
        "remediation": "" if status == "pass" else f"Fix {check}.",
        "commands": [{"label": label, "command": command} for label, command in commands],
        "evidence": evidence,
    }


def _targets() -> list[dict[str, Any]]:
    good = {
        "name": "payments-api",
        "address": "10.0.0.5:8443",
        "server_name": "payments.internal",
        "tags": ["prod", "pci"],
        "status": "warn",
        "error": None,
        "scanned_at": "2026-11-26T10:00:01+00:00",
        "accepted_versions": ["TLSv1.2", "TLSv1.3"],
        "client_auth": [
            {
                "version": "TLSv1.2",
                "classification": "required",
                "blocked_at": "tls-handshake",
                "detail": "handshake_failure alert without a certificate",
            },
            {
                "version": "TLSv1.3",
                "classification": "required",
                "blocked_at": "tls-post-handshake",
                "detail": "certificate_required alert after Finished",
            },
        ],
        "certificates": [
            {
                "subject": "CN=payments.internal,O=Example",
                "issuer": "CN=Example Issuing CA,O=Example",
                "serial": "1f2e3d",
                "not_before": "2025-01-01T00:00:00+00:00",
                "not_after": "2026-01-01T00:00:00+00:00",
                "subject_alternative_names": ["DNS:payments.internal", "IP:10.0.0.5"],
                "sha256": SHA_A,
                "pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            },
            {
                "subject": "CN=Example Issuing CA,O=Example",
                "issuer": "CN=Example Root CA,O=Example",
                "serial": "02",
                "not_before": "2024-01-01T00:00:00+00:00",
                "not_after": "2030-01-01T00:00:00+00:00",
                "subject_alternative_names": [],
                "sha256": SHA_B,
                "pem": "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
            },
        ],
        "findings": [
            _finding(
                "client-cert-required",
                "pass",
                "critical",
                "A client certificate is required on every version.",
                commands=(
                    ("", "openssl s_client -connect 10.0.0.5:8443 -tls1_2 -servername payments.internal"),
                    ("", "openssl s_client -connect 10.0.0.5:8443 -tls1_3 -servername payments.internal"),
                ),
                per_version=[
                    {"version": "TLSv1.2", "blocked_at": "tls-handshake", "alert": "handshake_failure"},
                    {"version": "TLSv1.3", "blocked_at": "tls-post-handshake", "alert": "certificate_required"},
                ],
            ),
            _finding(
                "wrong-ca-rejected",
                "pass",
                "critical",
                "Certificates from other CAs are rejected.",
                commands=(
                    (
                        "rogue-ca@tls1.3",
                        "openssl s_client -connect 10.0.0.5:8443 -tls1_3 -cert rogue-ca-client.pem -key rogue-ca-client.key",
                    ),
                ),
                per_version=[
                    {
                        "probe": "rogue-ca@tls1.3",
                        "version": "TLSv1.3",
                        "rogue_ca": {"rejected": True, "alert": {"code": 48, "name": "unknown_ca"}},
                    }
                ],
            ),
            _finding(
                "tls13-only",
                "warn",
                "medium",
                "TLSv1.2 is still accepted.",
                accepted=["TLSv1.2", "TLSv1.3"],
                minimum="TLSv1.3",
            ),
            _finding("chain-complete", "pass", "medium", "The server sends its intermediate."),
            _finding("san-match", "pass", "high", "payments.internal matches DNS:payments.internal."),
            _finding("expiry-soon", "pass", "medium", "Expires in 120 days.", days_left=120, warning_days=30),
        ],
        "probes": [
            _probe("valid", "TLSv1.3", "tls1.3"),
            _probe(
                "no-cert",
                "TLSv1.3",
                "tls1.3",
                after_handshake="alert",
                session_ticket_received=False,
                alert_received={"code": 116, "name": "certificate_required", "phase": "post-handshake", "at_ms": 9.1},
                http=None,
            ),
        ],
    }
    hostile = {
        "name": f"legacy {SCRIPT}",
        "address": "192.0.2.10:443",
        "server_name": "legacy.example",
        "tags": [IMG],
        "status": "fail",
        "error": None,
        "scanned_at": "2026-11-26T10:00:02+00:00",
        "accepted_versions": ["TLSv1.2"],
        "client_auth": [
            {"version": "TLSv1.2", "classification": "optional", "blocked_at": None, "detail": f"served 200 {SCRIPT}"},
        ],
        "certificates": [
            {
                "subject": f"CN={SCRIPT},O={IMG}",
                "issuer": f"CN={IMG}",
                "serial": "abc",
                "not_before": "2020-01-01T00:00:00+00:00",
                "not_after": "2021-01-01T00:00:00+00:00",
                "subject_alternative_names": [f"DNS:{SCRIPT}", f"URI:{IMG}"],
                "sha256": SHA_C,
                "pem": "-----BEGIN CERTIFICATE-----\nMIID\n-----END CERTIFICATE-----\n",
            }
        ],
        "findings": [
            _finding(
                "client-cert-required",
                "fail",
                "critical",
                f"Served without a client certificate: {SCRIPT}",
                commands=(("", f"openssl s_client -connect 192.0.2.10:443 -servername '{IMG}'"),),
                per_version=[{"version": "TLSv1.2", "http": {"status": 200, "reason": SCRIPT}}],
            ),
            _finding(
                "san-match",
                "fail",
                "high",
                f"No SAN matches legacy.example; got {IMG}",
                names=[f"DNS:{SCRIPT}"],
                nested={IMG: {"deeper": [SCRIPT, None, True, 3]}},
            ),
            _finding("expiry-soon", "fail", "high", "Expired 1800 days ago."),
        ],
        "probes": [
            _probe(
                "no-cert",
                "TLSv1.2",
                "tls1.2",
                address="192.0.2.10:443",
                sni="legacy.example",
                after_handshake="not-waited",
                session_ticket_received=False,
                http={"request_line": "GET / HTTP/1.1", "status": 200, "reason": SCRIPT, "at_ms": 3.0, "error": None},
            ),
        ],
    }
    unreachable = {
        "name": "billing-db-proxy",
        "address": "[2001:db8::7]:5432",
        "server_name": "billing.internal",
        "tags": [],
        "status": "error",
        "error": "connection refused",
        "scanned_at": "2026-11-26T10:00:03+00:00",
        "accepted_versions": [],
        "client_auth": [],
        "certificates": [],
        "findings": [],
        "probes": [
            _probe(
                "valid",
                "TLSv1.3",
                "tls1.3",
                address="[2001:db8::7]:5432",
                sni="billing.internal",
                connected=False,
                connect_error="connection refused",
                server_hello_seen=False,
                handshake_completed=False,
                negotiated_version=None,
                cipher=None,
                certificate_request_seen=False,
                client_ca_names=[],
                after_handshake="not-waited",
                session_ticket_received=False,
                http=None,
                peer_chain_sha256=[],
                handshake_ms=None,
                total_ms=None,
            ),
        ],
    }
    return [good, hostile, unreachable]


def _scan() -> dict[str, Any]:
    return {
        "started": "2025-06-01T10:00:00+00:00",
        "finished": "2025-06-01T10:00:07+00:00",
        "tool": "mtls-audit",
        "tool_version": "0.1.0",
        "inventory": "inventory/prod.yaml",
        "options": {"concurrency": 8, "timeouts": {"connect": 5.0}, "checks": None},
    }


def _summary(targets: list[dict[str, Any]]) -> dict[str, Any]:
    by_target: dict[str, int] = {}
    by_finding: dict[str, int] = {}
    for target in targets:
        by_target[target["status"]] = by_target.get(target["status"], 0) + 1
        for finding in target["findings"]:
            by_finding[finding["status"]] = by_finding.get(finding["status"], 0) + 1
    return {"targets": len(targets), "targets_by_status": by_target, "findings_by_status": by_finding}


def _canonical(raw: dict[str, Any]) -> dict[str, Any]:
    """A report dict in exactly the shape the model writes (every optional key present)."""
    return ReportDocument.from_dict(raw).to_dict()


def _typed(document: dict[str, Any]) -> ReportDocument:
    return ReportDocument.from_dict(document)


def _write_json(path, document: dict[str, Any]) -> None:
    typed = _typed(document)
    writer = JsonReportWriter(path)
    writer.start(typed.scan)
    for target in typed.targets:
        writer.add(target)
    writer.finish(typed.scan, typed.summary)


@pytest.fixture
def document() -> dict[str, Any]:
    targets = _targets()
    return _canonical({"schema_version": "1.3", "scan": _scan(), "summary": _summary(targets), "targets": targets})


@pytest.fixture
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def _errors(validator: jsonschema.Draft202012Validator, document: dict[str, Any]) -> list[str]:
    return [error.message for error in validator.iter_errors(document)]


# -- schema ------------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_accepts_the_document(document, validator):
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert _errors(validator, document) == []


def test_schema_matches_what_the_scanner_emits(document, validator):
    """The real to_dict() methods and a real check's evidence satisfy the schema."""
    from datetime import UTC, datetime

    from mtls_audit.checks.base import Evidence
    from mtls_audit.checks.client_cert_required import CHECK
    from mtls_audit.scanner.judge import classify_client_auth
    from mtls_audit.scanner.model.observations import (
        AfterHandshake,
        Alert,
        HttpExchange,
        Phase,
        Presented,
        ProbeObservation,
        ProbeSpec,
        TLSVersion,
    )
    from mtls_audit.scanner.model.report import SCHEMA_VERSION
    from mtls_audit.scanner.model.target import AppProtocol, Target

    target = Target(name="payments-api", host="10.0.0.5", port=8443, server_name="payments.internal")
    common = dict(
        address=target.address,
        sni="payments.internal",
        connected=True,
        server_hello_seen=True,
        handshake_completed=True,
        negotiated_version="TLSv1.3",
        certificate_request_seen=True,
        peer_chain_der=(b"leaf", b"intermediate"),
    )
    valid = ProbeObservation(
        spec=ProbeSpec(Presented.VALID, TLSVersion.TLS1_3),
        client_certificate_sha256=SHA_C,
        after_handshake=AfterHandshake.TICKET,
        session_ticket_received=True,
        http=HttpExchange("GET / HTTP/1.1", status=200, reason="OK", at_ms=9.0),
        **common,
    )
    no_cert = ProbeObservation(
        spec=ProbeSpec(Presented.NO_CERT, TLSVersion.TLS1_3),
        client_certificate_sha256=None,
        alert_received=Alert(116, Phase.POST_HANDSHAKE, 7.5),
        after_handshake=AfterHandshake.ALERT,
        timed_out=Phase.HTTP,
        **common,
    )
    finding = CHECK.evaluate(Evidence(target, (valid, no_cert), datetime(2025, 6, 1, tzinfo=UTC)))
    auth = classify_client_auth(TLSVersion.TLS1_3, valid, [no_cert], AppProtocol.HTTP)

    first = document["targets"][0]
    first["probes"] = [valid.to_dict(), no_cert.to_dict()]
    first["findings"] = [finding.to_dict()]
    first["client_auth"] = [auth.entry().to_dict()]
    assert SCHEMA_VERSION == document["schema_version"] == schema()["properties"]["schema_version"]["enum"][-1]
    assert _errors(validator, document) == []
    # and the HTML shows the finding's openssl commands, apart from the evidence table
    assert finding.commands and all(isinstance(c, ReproCommand) for c in finding.commands)
    page = render_html(_typed(document))
    assert page.count('<pre class="cmd">') >= 1 and "s_client" in page
    assert "openssl_command" not in page


@pytest.mark.parametrize("where", ["target", "finding"])
def test_schema_rejects_an_unknown_status(document, validator, where):
    if where == "target":
        document["targets"][0]["status"] = "ok"
    else:
        document["targets"][0]["findings"][0]["status"] = "passed"
    assert any("'ok'" in message or "'passed'" in message for message in _errors(validator, document))


def test_schema_is_strict_on_the_public_contract(document, validator):
    cases = [
        (lambda d: d.__setitem__("schema_version", "2.0")),
        (lambda d: d["targets"][0]["findings"][0].__setitem__("severity", "severe")),
        (lambda d: d["targets"][0]["findings"][0].__setitem__("check", 7)),
        (lambda d: d["targets"][0]["findings"][0].pop("summary")),
        (lambda d: d["targets"][0]["findings"][0].__setitem__("remediation", None)),
        (lambda d: d["targets"][0]["probes"][0].pop("probe")),
        (lambda d: d["targets"][0]["probes"][0].__setitem__("after_handshake", "later")),
        (lambda d: d["targets"][0]["probes"][0].__setitem__("surprise", True)),
        (lambda d: d["targets"][0]["probes"][0].__setitem__("presented", "valid")),  # without pinned_version
        (lambda d: d["targets"][0]["certificates"].__setitem__(0, "not-a-fingerprint")),
        (lambda d: d["certificates"][SHA_A].pop("pem")),
        (lambda d: d["certificates"][SHA_A].__setitem__("sha256", SHA_A)),
        (lambda d: d["certificates"].__setitem__("ABC", d["certificates"][SHA_A])),
        (lambda d: d["targets"][0]["client_auth"][0].__setitem__("classification", "maybe")),
        (lambda d: d["targets"][0].__setitem__("surprise", 1)),
        (lambda d: d["targets"][2].pop("error")),
        (lambda d: d["summary"]["targets_by_status"].__setitem__("bogus", 1)),
        (lambda d: d["targets"][0]["findings"][0]["evidence"].__setitem__("openssl_command", 5)),
    ]
    for number, mutate in enumerate(cases):
        broken = copy.deepcopy(document)
        mutate(broken)
        assert _errors(validator, broken), f"case {number} was accepted"


def test_schema_allows_free_form_evidence_and_options(document, validator):
    document["targets"][0]["findings"][2]["evidence"]["anything"] = {"nested": [1, {"x": None}]}
    document["scan"]["options"]["future_option"] = ["a", "b"]
    assert _errors(validator, document) == []


# -- streaming writer ----------------------------------------------------------------


def test_streaming_writer_output_parses_validates_and_keeps_order(tmp_path, document, validator):
    path = tmp_path / "report.json"
    typed = _typed(document)
    writer = JsonReportWriter(path)
    writer.start(typed.scan)
    for target in typed.targets:
        writer.add(target)
    assert writer.finish(typed.scan, typed.summary) == path

    text = path.read_text(encoding="utf-8")
    assert text.startswith('{"schema_version":"1.3","targets":[\n{"name":"payments-api",')
    # compact, one target per line, then one line per distinct certificate
    lines = text.splitlines()
    assert [json.loads(line.rstrip(","))["name"] for line in lines[1:4]] == [t["name"] for t in document["targets"]]
    assert lines[4] == '],"certificates":{'
    assert [line.split(":", 1)[0] for line in lines[5:8]] == [f'"{sha}"' for sha in (SHA_A, SHA_B, SHA_C)]
    assert lines[8] == "}," and lines[9].startswith('"scan":{') and lines[10].startswith('"summary":{')
    assert len(lines) == 11
    written = json.loads(text)
    assert _errors(validator, written) == []
    assert [t["name"] for t in written["targets"]] == ["payments-api", f"legacy {SCRIPT}", "billing-db-proxy"]
    assert written == document
    assert list(tmp_path.iterdir()) == [path]  # the temporary file was renamed, not copied


def test_streaming_writer_with_no_targets_is_valid(tmp_path, validator):
    path = tmp_path / "empty.json"
    writer = JsonReportWriter(path)
    writer.start(ScanInfo.from_dict(_scan()))
    writer.finish(ScanInfo.from_dict(_scan()), Summary.from_dict(_summary([])))
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["targets"] == []
    assert _errors(validator, written) == []


def test_no_file_under_the_final_name_until_finish(tmp_path, document):
    path = tmp_path / "report.json"
    writer = JsonReportWriter(path)
    writer.start(ScanInfo.from_dict(document["scan"]))
    writer.add(_typed(document).targets[0])
    assert not path.exists()
    partial = [p for p in tmp_path.iterdir()]  # the report, and the certificates waiting for the end
    assert len(partial) == 2 and all(p.name.startswith(".report.json") for p in partial)
    writer.abort()
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_aborted_writer_publishes_nothing(tmp_path, document):
    path = tmp_path / "report.json"
    writer = JsonReportWriter(path)
    writer.start(ScanInfo.from_dict(document["scan"]))
    writer.add(_typed(document).targets[0])
    writer.abort()  # what the pipeline does when the scan crashes
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_finish_does_not_clobber_an_old_report_until_it_succeeds(tmp_path, document):
    path = tmp_path / "report.json"
    path.write_text("previous report", encoding="utf-8")
    writer = JsonReportWriter(path)
    writer.start(ScanInfo.from_dict(document["scan"]))
    writer.add(_typed(document).targets[0])
    assert path.read_text(encoding="utf-8") == "previous report"
    writer.finish(ScanInfo.from_dict(document["scan"]), Summary.from_dict(_summary(document["targets"][:1])))
    assert json.loads(path.read_text(encoding="utf-8"))["targets"][0]["name"] == "payments-api"


def test_writer_refuses_out_of_order_calls(tmp_path, document):
    typed = _typed(document)
    writer = JsonReportWriter(tmp_path / "report.json")
    with pytest.raises(RuntimeError):
        writer.add(typed.targets[0])
    writer.start(typed.scan)
    writer.finish(typed.scan, Summary.from_dict(_summary([])))
    with pytest.raises(RuntimeError):
        writer.add(typed.targets[0])


# -- load_report ---------------------------------------------------------------------


def test_load_report_round_trips_a_written_report(tmp_path, document):
    path = tmp_path / "report.json"
    _write_json(path, document)
    loaded = load_report(path)
    assert isinstance(loaded, ReportDocument)
    assert loaded == _typed(document)
    assert loaded.to_dict() == document


def _spelled_out(version: str) -> dict[str, Any]:
    """A report as 1.0 and 1.1 wrote it: every field of every probe and finding, the
    certificates inside each target, no certificates table."""
    targets = _targets()
    return {"schema_version": version, "scan": _scan(), "summary": _summary(targets), "targets": targets}


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_load_report_reads_reports_that_spell_everything_out(tmp_path, document, version):
    legacy = _spelled_out(version)
    assert "certificates" not in legacy and isinstance(legacy["targets"][0]["certificates"][0], dict)
    assert legacy["targets"][0]["probes"][0]["presented"] == "valid"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy, indent=2), encoding="utf-8")
    loaded = load_report(path)
    assert loaded.targets == _typed(document).targets
    assert loaded.to_dict()["targets"] == document["targets"]  # written again, in the 1.3 shape


def test_load_report_rejects_a_certificate_missing_from_the_table(tmp_path, document):
    del document["certificates"][SHA_B]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ReportError, match=r"targets\[0\]\.certificates\[1\]: b{64} is not in the certificates table"):
        load_report(path)


def test_load_report_moves_1_0_commands_out_of_the_evidence(tmp_path):
    """A 1.0 report kept its openssl lines in the evidence; loaded, they are the
    finding's commands (labelled by their entry), as every writer expects."""
    legacy = _spelled_out("1.0")
    cert_required, wrong_ca = legacy["targets"][0]["findings"][:2]
    for finding in legacy["targets"][0]["findings"]:
        del finding["commands"]
    cert_required["evidence"]["openssl_command"] = ["openssl s_client -tls1_2", "openssl s_client -tls1_3"]
    wrong_ca["evidence"]["per_version"][0]["openssl_command"] = "openssl s_client -cert rogue.pem"
    wrong_ca["evidence"]["per_version"].append({"version": "TLSv1.2", "openssl_command": ["openssl s_client -tls1_2"]})
    path = tmp_path / "old.json"
    path.write_text(json.dumps(legacy), encoding="utf-8")

    loaded = load_report(path)
    first, second = loaded.targets[0].findings[:2]
    assert first.commands == (
        ReproCommand("", "openssl s_client -tls1_2"),
        ReproCommand("", "openssl s_client -tls1_3"),
    )
    assert "openssl_command" not in first.evidence
    assert second.commands == (
        ReproCommand("rogue-ca@tls1.3", "openssl s_client -cert rogue.pem"),
        ReproCommand("TLSv1.2", "openssl s_client -tls1_2"),
    )
    assert all("openssl_command" not in entry for entry in second.evidence["per_version"])
    assert loaded.schema_version == "1.0"


def test_load_report_rejects_a_schema_violation(tmp_path, document):
    document["targets"][1]["findings"][0]["severity"] = "apocalyptic"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ReportError) as raised:
        load_report(path)
    message = str(raised.value)
    assert "\n" not in message
    assert "apocalyptic" in message and "targets[1]" in message


def test_load_report_reads_the_writers_layout_a_line_at_a_time(tmp_path, document):
    path = tmp_path / "report.json"
    _write_json(path, document)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    # a violation in the second target is named as the whole-document check names it
    broken = json.loads(lines[2].rstrip(",\n"))
    broken["findings"][0]["severity"] = "apocalyptic"
    edited = tmp_path / "edited.json"
    edited.write_text("".join([*lines[:2], json.dumps(broken) + ",\n", *lines[3:]]), encoding="utf-8")
    with pytest.raises(ReportError) as raised:
        load_report(edited)
    assert "at $.targets[1].findings[0].severity: 'apocalyptic' is not one of" in str(raised.value)
    # so is a certificate the table does not hold, and a probe id that names no probe
    edited.write_text("".join(lines).replace(f'"{SHA_B}":{{', f'"{"d" * 64}":{{'), encoding="utf-8")
    with pytest.raises(ReportError, match=r"targets\[0\]\.certificates\[1\]: b{64} is not in"):
        load_report(edited)
    edited.write_text("".join(lines).replace('"probe":"no-cert@tls1.3"', '"probe":"nobody@tls1.3"'), encoding="utf-8")
    with pytest.raises(ReportError, match=r"at \$\.targets\[0\]: 'nobody' is not a valid Presented"):
        load_report(edited)
    # a target split over lines (edited by hand) is read whole, to the same result
    pretty = json.dumps(json.loads(lines[1].rstrip(",\n")), indent=2)
    edited.write_text("".join([lines[0], pretty + ",\n", *lines[2:]]), encoding="utf-8")
    assert load_report(edited) == load_report(path) == _typed(document)


def test_load_report_rejects_invalid_json(tmp_path):
    path = tmp_path / "truncated.json"
    path.write_text('{"schema_version": "1.0", "targets": [{"name": ', encoding="utf-8")
    with pytest.raises(ReportError, match="not valid JSON") as raised:
        load_report(path)
    assert "\n" not in str(raised.value)


def test_load_report_rejects_another_schema_version(tmp_path, document):
    document["schema_version"] = "0.9"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ReportError, match="schema_version"):
        load_report(path)


def test_load_report_on_a_missing_file_is_a_report_error(tmp_path):
    with pytest.raises(ReportError, match="cannot read"):
        load_report(tmp_path / "absent.json")


# -- HTML ----------------------------------------------------------------------------


def test_html_shows_every_target_and_check(document):
    page = render_html(_typed(document))
    for target in document["targets"]:
        assert html.escape(target["name"], quote=False) in page
        assert target["address"] in page
    for check in CHECK_IDS:
        assert check in page
    assert "connection refused" in page  # the error target's reason
    assert "inventory/prod.yaml" in page and "0.1.0" in page
    assert "2025-06-01T10:00:07+00:00" in page


def test_html_escapes_attacker_controlled_text(document):
    page = render_html(_typed(document))
    # the only script element is the report's own filter, verbatim
    assert page.lower().count("<script") == 1
    assert page.count(f"<script>{FILTER_SCRIPT}</script>") == 1
    assert "<img" not in page.lower()
    assert "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # quotes are escaped too, so the payload cannot break out of an attribute
    assert IMG not in page
    assert "&#34;&gt;&lt;img" in page


def test_html_loads_nothing_external(document):
    page = render_html(_typed(document))
    lowered = page.lower()
    assert "<link" not in lowered
    assert lowered.count("<script") == 1 and not re.search(r"<script[^>]*\bsrc", lowered)
    assert "@import" not in lowered
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", lowered)
    assert not re.search(r"\b(?:src|href|action)\s*=\s*['\"]?\s*(?:https?:)?//", lowered)
    assert "http://" not in lowered and "https://" not in lowered
    assert "<style>" in page  # the CSS is inline


def test_html_anchors_come_from_positions_and_every_link_resolves(document):
    page = render_html(_typed(document))
    ids = set(re.findall(r'\sid="([^"]*)"', page))
    assert {"summary", "target-1", "target-2", "target-3"} <= ids
    for check in CHECK_IDS:
        assert f"target-1-{check}" in ids
    assert {"target-2-client-cert-required", "target-2-san-match", "target-2-expiry-soon"} <= ids
    assert all(re.fullmatch(r"[a-z0-9_-]+", anchor) for anchor in ids)
    links = re.findall(r'href="#([^"]*)"', page)
    assert links and set(links) <= ids
    assert "#target-1-tls13-only" in page


def test_html_shows_status_as_text_and_colour(document):
    page = render_html(_typed(document))
    for status in ("pass", "warn", "fail", "error"):
        assert re.search(rf'class="badge s-{status}">{status.upper()}</span>', page)
    assert re.search(r'class="cell s-fail"><a href="#target-2-client-cert-required"[^>]*>FAIL</a>', page)


def test_html_renders_evidence_commands_and_nested_values(document):
    page = render_html(_typed(document))
    assert (
        '<pre class="cmd">openssl s_client -connect 10.0.0.5:8443 -tls1_2 -servername payments.internal</pre>' in page
    )
    assert (
        '<pre class="cmd">openssl s_client -connect 10.0.0.5:8443 -tls1_3 -servername payments.internal</pre>' in page
    )
    assert "-servername &#39;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;&#39;</pre>" in page
    # commands nested in per_version entries are lifted out, labelled, and not repeated
    assert '<div class="cmd-label">rogue-ca@tls1.3</div>' in page
    assert page.count("-cert rogue-ca-client.pem") == 1
    assert "<th>openssl_command</th>" not in page
    # per_version (a list of objects) becomes a table with its keys as columns
    assert "<th>blocked_at</th>" in page and "tls-post-handshake" in page
    # nested objects inside per_version are shown, not dropped
    assert "unknown_ca" in page and "<dt>rejected</dt>" in page
    # free-form keys, nested lists and literals are shown
    assert "<dt>days_left</dt>" in page and "120" in page
    assert "<dt>deeper</dt>" in page and ">null<" in page and ">true<" in page


def test_html_renders_empty_lists_and_null_values(document):
    document["scan"]["finished"] = None
    document["scan"]["inventory"] = None
    document["scan"]["options"] = {}
    page = render_html(_typed(document))
    section = page.split('id="target-3"', 1)[1]
    assert "No certificate chain recorded." in section
    assert "No findings." in section
    assert "No client-authentication observations." in section
    assert "not recorded" in page  # finished: null
    # the error target still appears in the summary table, with a dash per check
    row = page.split('href="#target-3"', 1)[1].split("</tr>", 1)[0]
    assert row.count('class="cell none"') == len(CHECK_IDS)


def test_html_renders_a_report_with_no_targets():
    document = {"schema_version": "1.3", "scan": _scan(), "summary": _summary([]), "targets": []}
    page = render_html(_typed(document))
    assert "The report contains no targets." in page


def test_write_html_writes_the_rendered_page(tmp_path, document):
    path = tmp_path / "out" / "report.html"
    path.parent.mkdir()  # writers do not create directories: the CLI checks output paths first
    assert write_html(_typed(document), path) == path
    assert path.read_text(encoding="utf-8") == render_html(_typed(document))
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_a_saved_json_report_can_be_re_rendered(tmp_path, document):
    path = tmp_path / "report.json"
    _write_json(path, document)
    assert render_html(load_report(path)) == render_html(_typed(document))


def _csp(page: str) -> dict[str, list[str]]:
    match = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert match, "no CSP meta"
    directives: dict[str, list[str]] = {}
    for directive in html.unescape(match.group(1)).split(";"):
        name, *sources = directive.split()
        directives[name] = sources
    return directives


def test_html_csp_allows_only_the_shipped_script_by_hash(document):
    import base64
    import hashlib

    page = render_html(_typed(document))
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert scripts == [FILTER_SCRIPT]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode("utf-8")).digest()).decode()
    csp = _csp(page)
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == [f"'sha256-{digest}'"]  # no 'unsafe-inline', no host, no 'self'
    assert csp["style-src"] == ["'unsafe-inline'"]
    assert csp["img-src"] == ["data:"]
    assert csp["base-uri"] == ["'none'"] and csp["form-action"] == ["'none'"]
    # the CSP meta comes before anything it governs
    assert page.index("Content-Security-Policy") < page.index("<style>") < page.index("<script>")


def test_html_filter_script_never_builds_html():
    assert FILTER_SCRIPT.isascii()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "Function(",
        "setTimeout",
        "setInterval",
        "createElement",
        "location",
        "fetch",
        "XMLHttpRequest",
    ):
        assert sink not in FILTER_SCRIPT, sink
    assert "textContent" in FILTER_SCRIPT and "dataset" in FILTER_SCRIPT
    # One parse, and only of markup the page itself holds: a target's section the
    # template wrote (autoescaped) inside its own <noscript>, which a browser with
    # JavaScript on keeps as text. A DOMParser document runs nothing.
    assert FILTER_SCRIPT.count("DOMParser") == 1
    assert 'if (slot.tagName !== "NOSCRIPT") { return slot; }' in FILTER_SCRIPT
    assert 'new DOMParser().parseFromString(slot.textContent, "text/html")' in FILTER_SCRIPT


def test_html_filter_ui_is_hidden_until_the_script_runs(document):
    page = render_html(_typed(document))
    assert re.search(r'<div class="filters" id="filters"[^>]*\shidden>', page)
    assert re.search(r'<p id="f-none"[^>]*\shidden>', page)
    assert "<form" not in page  # nothing to submit, so nothing for form-action to block


def test_html_matrix_rows_carry_escaped_filter_attributes(document):
    page = render_html(_typed(document))
    tbody = page.split('<table class="matrix">', 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr data-filter-item ([^>]*)>", tbody)
    assert len(rows) == len(document["targets"])
    for attributes, target in zip(rows, document["targets"], strict=True):
        values = {k: html.unescape(v) for k, v in re.findall(r'(data-[a-z]+)="([^"]*)"', attributes)}
        assert values["data-name"] == target["name"]
        assert json.loads(values["data-tags"]) == target["tags"]
        assert values["data-status"] == target["status"]
    # the hostile name and tag are escaped inside the attributes
    assert 'data-name="legacy &lt;script&gt;alert(1)&lt;/script&gt;"' in tbody
    assert "&#34;\\&#34;&gt;&lt;img src=x onerror=alert(1)&gt;&#34;" in tbody  # JSON ["\"><img ...>"]
    # the target sections carry the same attributes, so they filter with their rows
    sections = re.findall(r'<section class="target [^"]*" id="target-\d+" data-filter-item ([^>]*)>', page)
    assert sections == rows


def _waived(document: dict[str, Any]) -> dict[str, Any]:
    legacy = document["targets"][1]
    legacy["findings"][1].update(
        waived=True,
        waiver={
            "target": legacy["name"],
            "check": "san-match",
            "reason": f"migrating {SCRIPT}",
            "owner": "team-edge",
            "expires": "2026-12-31",
            "expired": False,
        },
        baseline="known",
    )
    legacy["findings"][0]["baseline"] = "new"
    legacy["findings"][2].update(
        waived=False,
        waiver={
            "target": legacy["name"],
            "check": "expiry-soon",
            "reason": "renewal",
            "owner": "pki",
            "expires": "2025-01-01",
            "expired": True,
        },
    )
    document["targets"][0]["findings"][3]["baseline"] = "resolved"
    document["scan"]["waivers"] = {
        "file": "waivers.yaml",
        "expired": [
            {
                "target": legacy["name"],
                "check": "expiry-soon",
                "reason": "renewal",
                "owner": "pki",
                "expires": "2025-01-01",
            }
        ],
        "unused": [
            {
                "target": "gone-service",
                "check": "tls13-only",
                "reason": "legacy clients",
                "owner": "team-old",
                "expires": "2027-01-01",
            }
        ],
    }
    document["scan"]["baseline"] = {"file": "baseline.json", "missing_targets": ["decommissioned-api", IMG]}
    return document


def test_html_shows_waived_findings_as_waived_everywhere(document):
    page = render_html(_typed(_waived(document)))
    # matrix cell: waived, not fail, still linking to the finding
    assert re.search(
        r'class="cell s-waived"><a href="#target-2-san-match" title="[^"]*waived fail[^"]*">WAIVED</a>', page
    )
    # the finding block: waived badge, the status under the waiver, reason, owner, expiry
    block = page.split('id="target-2-san-match"', 1)[1].split("</article>", 1)[0]
    assert 'class="badge s-waived">WAIVED</span>' in block
    assert ">FAIL</span>" in block
    assert "owner team-edge" in block and "expires 2026-12-31" in block
    assert "migrating &lt;script&gt;alert(1)&lt;/script&gt;" in block
    # an expired waiver does not waive: the finding stays a failure, and says why
    expired = page.split('id="target-2-expiry-soon"', 1)[1].split("</article>", 1)[0]
    assert 'class="badge s-fail">FAIL</span>' in expired and "Waiver expired" in expired
    assert re.search(r'class="cell s-fail"><a href="#target-2-expiry-soon"', page)
    # the header counts it apart
    assert re.search(r'class="badge s-waived">WAIVED</span>&nbsp;1', page)
    # filterable: the row is flagged
    assert re.search(r'data-status="fail" data-flags="attention waived new"', page)


def test_html_marks_new_findings_and_shows_baseline_and_waiver_files(document):
    page = render_html(_typed(_waived(document)))
    assert re.search(
        r'class="cell s-fail"><a href="#target-2-client-cert-required"[^>]*>FAIL<span class="new">NEW</span>', page
    )
    new_block = page.split('id="target-2-client-cert-required"', 1)[1].split("</article>", 1)[0]
    assert '<span class="new">NEW</span>' in new_block
    assert '<span class="marker">RESOLVED</span>' in page.split('id="target-1-chain-complete"', 1)[1]
    header = page.split("</header>", 1)[0]
    assert "<code>waivers.yaml</code>" in header and "<code>baseline.json</code>" in header
    assert "1 expired waiver" in header and "1 unused waiver" in header and "gone-service" in header
    assert "1 new finding, 1 resolved" in header
    assert "<code>decommissioned-api</code>" in header and "&lt;img src=x onerror=alert(1)&gt;" in header


def test_html_without_waiver_or_baseline_fields_shows_neither(document):
    page = render_html(_typed(document))
    assert 's-waived"><a' not in page and '<span class="new">NEW</span><' not in page.split("<tbody>", 1)[1]
    assert 'id="waivers"' not in page and 'id="baseline"' not in page
    assert "WAIVED</span>&nbsp;" not in page  # no waived count when nothing is waived


def test_html_makes_control_characters_and_bad_bytes_visible(tmp_path, document):
    bad = b"\xff".decode("utf-8", "surrogateescape")
    certificate = document["certificates"][document["targets"][0]["certificates"][0]]
    certificate["subject"] = f"CN=a\x1b[31mred{bad}\u202eevil\nCN=forged"
    document["targets"][0]["findings"][0]["evidence"]["note"] = f"x\x00y\x7f{bad}"
    path = write_html(_typed(document), tmp_path / "report.html")  # a lone surrogate would not encode
    page = path.read_text(encoding="utf-8")
    assert "\x1b" not in page and "\x00" not in page and "\x7f" not in page and "\u202e" not in page
    assert "CN=a\\x1b[31mred\ufffd\\u202eevil\\nCN=forged" in page
    assert "x\\x00y\\x7f\ufffd" in page
