"""The SIEM writer (reports/siem.py): NDJSON events in ECS and OCSF, one line each."""

from __future__ import annotations

import copy
import io
import ipaddress
import itertools
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mtls_audit.checks.registry import load_checks
from mtls_audit.reports.json_report import schema
from mtls_audit.reports.siem.writer import (
    ECS_VERSION,
    OCSF_VERSION,
    SEVERITY_MAP,
    STATUS_MAP,
    SiemWriter,
    event_severity,
    finding_uid,
    mapping_table_markdown,
)
from mtls_audit.scanner.model.finding import Finding
from mtls_audit.scanner.model.report import CheckInfo, ReportDocument, ScanInfo, Summary, TargetReport
from mtls_audit.scanner.model.status import Severity, Status

FIXED_NOW = datetime(2026, 3, 1, 12, 40, 0, 123456, tzinfo=UTC)

# -- ECS reference data, copied from the ECS documentation --------------------------------
# Allowed values: "ECS categorization fields" (elastic.co/docs/reference/ecs,
# ecs-allowed-values-event-kind / -event-category / -event-type / -event-outcome).
ECS_EVENT_KIND = {"alert", "asset", "enrichment", "event", "metric", "state", "pipeline_error", "signal"}
ECS_EVENT_CATEGORY = {
    "api", "authentication", "configuration", "database", "driver", "file", "host", "iam",
    "intrusion_detection", "library", "malware", "network", "package", "process", "registry",
    "session", "threat", "vulnerability", "web",
}  # fmt: skip
ECS_EVENT_TYPE = {
    "access", "admin", "allowed", "change", "connection", "creation", "deletion", "denied",
    "device", "end", "error", "group", "indicator", "info", "installation", "protocol", "start", "user",
}  # fmt: skip
ECS_EVENT_OUTCOME = {"failure", "success", "unknown"}
# "Expected event types for category ...", for the categories this writer uses.
ECS_EXPECTED_TYPES = {
    "configuration": {"access", "change", "creation", "deletion", "info"},
    "network": {"access", "allowed", "connection", "denied", "end", "info", "protocol", "start"},
}

# Field types from the ECS field reference (elastic/ecs generated/csv/fields.csv); "[]"
# marks fields ECS normalizes to an array. mtls.* are ours.
ECS_FINDING_FIELDS = {
    "@timestamp": "date",
    "message": "match_only_text",
    "tags": "keyword[]",
    "ecs.version": "keyword",
    "event.kind": "keyword",
    "event.category": "keyword[]",
    "event.type": "keyword[]",
    "event.outcome": "keyword",
    "event.dataset": "keyword",
    "event.module": "keyword",
    "event.severity": "long",
    "event.created": "date",
    "rule.id": "keyword",
    "rule.name": "keyword",
    "rule.ruleset": "keyword",
    "rule.description": "keyword",
    "rule.category": "keyword",
    "destination.address": "keyword",
    "destination.ip": "ip",
    "destination.port": "long",
    "destination.domain": "keyword",
    "tls.version": "keyword",
    "tls.version_protocol": "keyword",
    "tls.cipher": "keyword",
    "tls.established": "boolean",
    "tls.client.server_name": "keyword",
    "tls.server.hash.sha256": "keyword",
    "tls.server.x509.subject.distinguished_name": "keyword",
    "tls.server.x509.issuer.distinguished_name": "keyword",
    "tls.server.x509.alternative_names": "keyword[]",
    "tls.server.x509.not_before": "date",
    "tls.server.x509.not_after": "date",
    "tls.server.x509.serial_number": "keyword",
    "observer.vendor": "keyword",
    "observer.product": "keyword",
    "observer.version": "keyword",
    "observer.type": "keyword",
    "related.ip": "ip[]",
    "related.hosts": "keyword[]",
    "related.hash": "keyword[]",
    "mtls.status": "keyword",
    "mtls.severity": "keyword",
    "mtls.remediation": "keyword",
    "mtls.finding_uid": "keyword",
    "mtls.target.name": "keyword",
    "mtls.target.address": "keyword",
    "mtls.waived": "boolean",
}
ECS_SUMMARY_FIELDS = {
    "@timestamp": "date",
    "message": "match_only_text",
    "ecs.version": "keyword",
    "event.kind": "keyword",
    "event.category": "keyword[]",
    "event.type": "keyword[]",
    "event.outcome": "keyword",
    "event.dataset": "keyword",
    "event.module": "keyword",
    "event.severity": "long",
    "event.created": "date",
    "event.start": "date",
    "event.end": "date",
    "event.duration": "long",
    "observer.product": "keyword",
    "mtls.summary.targets": "long",
}

# OCSF 1.8.0: base-event required attributes and their types (schema.ocsf.io).
OCSF_SEVERITY_CAPTIONS = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal"}
OCSF_COMPLIANCE_STATUS_IDS = {0, 1, 2, 3, 99}

HOSTILE = {
    "newline": "CN=evil\nCN=injected",
    "crlf": "line one\r\nline two",
    "ansi": "\x1b[31mRED\x1b[0m\x1b]0;title\x07",
    "html": "<script>alert(1)</script>",
    "separators": "a\u2028b\u2029c\u0085d",
    "nul": "nul\x00byte",
    "surrogate": "lone \ud800 surrogate",
    "unicode": "é漢字🙂",
}
HOSTILE_TEXT = " | ".join(HOSTILE.values())

# -- builders ---------------------------------------------------------------------------

LEAF_SHA = "0123456789abcdef" * 4
INTERMEDIATE_SHA = "fedcba9876543210" * 4


def _probe(presented: str, version: str, short: str, **overrides: Any) -> dict[str, Any]:
    probe = {
        "probe": f"{presented}@{short}",
        "presented": presented,
        "pinned_version": version,
        "address": "10.20.30.40:8443",
        "sni": "payments.internal",
        "client_certificate_sha256": None if presented == "no-cert" else "c" * 64,
        "connected": True,
        "connect_error": None,
        "server_hello_seen": True,
        "handshake_completed": True,
        "negotiated_version": version,
        "cipher": "TLS_AES_256_GCM_SHA384" if version == "TLSv1.3" else "ECDHE-RSA-AES256-GCM-SHA384",
        "certificate_request_seen": True,
        "client_ca_names": ["CN=Internal Client CA"],
        "alert_received": None,
        "alert_sent": None,
        "tls_error": None,
        "after_handshake": "ticket" if version == "TLSv1.3" else "not-waited",
        "session_ticket_received": version == "TLSv1.3",
        "http": {"request_line": "GET / HTTP/1.1", "status": 200, "reason": "OK", "at_ms": 9.0, "error": None},
        "timed_out": None,
        "peer_chain_sha256": [LEAF_SHA, INTERMEDIATE_SHA],
        "connect_ms": 1.0,
        "handshake_ms": 5.0,
        "total_ms": 10.0,
    }
    probe.update(overrides)
    return probe


def _finding(check: str, status: str, severity: str, summary: str = "", **extra: Any) -> dict[str, Any]:
    finding = {
        "check": check,
        "status": status,
        "severity": severity,
        "summary": summary or f"{check} is {status}",
        "remediation": f"fix {check}",
        "evidence": {},
    }
    finding.update(extra)
    return finding


def _findings() -> list[dict[str, Any]]:
    alert_116 = {"code": 116, "name": "certificate_required", "phase": "post-handshake", "at_ms": 3.2}
    return [
        _finding(
            "client-cert-required",
            "fail",
            "critical",
            "a client without a certificate gets in (TLSv1.3: optional)",
            commands=[
                {"label": "no-cert@tls1.2", "command": "openssl s_client -connect 10.20.30.40:8443 -tls1_2"},
                {"label": "no-cert@tls1.3", "command": "openssl s_client -connect 10.20.30.40:8443 -tls1_3"},
            ],
            evidence={
                # the shape checks/client_cert_required.py gives: attempts per version
                "per_version": [
                    {
                        "version": "TLSv1.2",
                        "classification": "required",
                        "blocked_at": "tls-handshake",
                        "attempts": [
                            {
                                "probe": "no-cert@tls1.2",
                                "outcome": "blocked",
                                "blocked_at": "tls-handshake",
                                "alert": {
                                    "code": 116,
                                    "name": "certificate_required",
                                    "phase": "handshake",
                                    "at_ms": 2.0,
                                },
                            }
                        ],
                    },
                    {
                        "version": "TLSv1.3",
                        "classification": "optional",
                        "blocked_at": None,
                        "attempts": [
                            {"probe": "no-cert@tls1.3", "outcome": "accepted", "blocked_at": None, "alert": None}
                        ],
                    },
                ]
            },
        ),
        _finding(
            "wrong-ca-rejected",
            "pass",
            "critical",
            evidence={
                "probes": [
                    {"probe": "rogue-ca@tls1.3", "blocked_at": "tls-post-handshake", "alert": alert_116},
                    {"probe": "self-signed@tls1.3", "blocked_at": "http", "alert": None, "http_status": 403},
                ]
            },
        ),
        _finding("tls13-only", "fail", "medium", "accepts TLSv1.2 (policy minimum TLSv1.3)"),
        _finding("chain-complete", "error", "medium", "could not decide"),
        _finding("san-match", "skip", "high", "not applicable"),
        _finding("expiry-soon", "warn", "high", "server leaf expires in 5 days"),
    ]


def _target(**overrides: Any) -> dict[str, Any]:
    target = {
        "name": "payments-api",
        "address": "10.20.30.40:8443",
        "server_name": "payments.internal",
        "tags": ["prod", "pci"],
        "status": "fail",
        "error": None,
        "scanned_at": "2026-03-01T12:34:56.789123+00:00",
        "accepted_versions": ["TLSv1.2", "TLSv1.3"],
        "client_auth": [
            {
                "version": "TLSv1.2",
                "classification": "required",
                "blocked_at": "tls-handshake",
                "certificate_request_seen": True,
                "detail": "blocked (alert 116)",
            },
            {
                "version": "TLSv1.3",
                "classification": "optional",
                "blocked_at": None,
                "certificate_request_seen": True,
                "detail": "accepted (HTTP answered 200 OK)",
            },
        ],
        "certificates": [
            {
                "subject": "CN=payments.internal,O=Example",
                "issuer": "CN=Example Issuing CA,O=Example",
                "serial": "0a1b2c3d4e5f",
                "not_before": "2026-01-01T00:00:00+00:00",
                "not_after": "2027-01-01T00:00:00+00:00",
                "subject_alternative_names": [
                    "DNS:payments.internal",
                    "IP:10.20.30.40",
                    "URI:spiffe://example/payments",
                ],
                "sha256": LEAF_SHA,
                "pem": "-----BEGIN CERTIFICATE-----\nMIIBleaf\n-----END CERTIFICATE-----\n",
            },
            {
                "subject": "CN=Example Issuing CA,O=Example",
                "issuer": "CN=Example Root CA,O=Example",
                "serial": "01",
                "not_before": "2025-01-01T00:00:00+00:00",
                "not_after": "2030-01-01T00:00:00+00:00",
                "subject_alternative_names": [],
                "sha256": INTERMEDIATE_SHA,
                "pem": "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n",
            },
        ],
        "findings": _findings(),
        "probes": [
            _probe("valid", "TLSv1.2", "tls1.2"),
            _probe("valid", "TLSv1.3", "tls1.3"),
            _probe(
                "no-cert",
                "TLSv1.2",
                "tls1.2",
                handshake_completed=False,
                negotiated_version=None,
                cipher=None,
                alert_received={"code": 116, "name": "certificate_required", "phase": "handshake", "at_ms": 2.0},
            ),
            _probe("no-cert", "TLSv1.3", "tls1.3"),
        ],
    }
    target.update(overrides)
    return target


SCAN_DICT = {
    "started": "2026-03-01T12:34:50.000000+00:00",
    "finished": "2026-03-01T12:35:01.500000+00:00",
    "tool": "mtls-audit",
    "tool_version": "0.1.0",
    "inventory": "inventory.yaml",
    "options": {"concurrency": 32, "fail_on": "fail"},
}


def _scan(checks: list[CheckInfo] | None = None) -> ScanInfo:
    """The scan, with the registered checks as its catalog unless ``checks`` is given."""
    catalog = [check.info for check in load_checks()] if checks is None else checks
    return ScanInfo.from_dict(SCAN_DICT | {"checks": [check.to_dict() for check in catalog]})


SCAN = _scan()


def _summary(targets: list[dict[str, Any]]) -> dict[str, Any]:
    by_target: dict[str, int] = {}
    by_finding: dict[str, int] = {}
    for target in targets:
        by_target[target["status"]] = by_target.get(target["status"], 0) + 1
        for finding in target["findings"]:
            by_finding[finding["status"]] = by_finding.get(finding["status"], 0) + 1
    return {"targets": len(targets), "targets_by_status": by_target, "findings_by_status": by_finding}


def _typed(target: dict[str, Any]) -> TargetReport:
    return TargetReport.from_dict(target)


def _summary_of(targets: list[dict[str, Any]]) -> Summary:
    return Summary.from_dict(_summary(targets))


def _write(
    flavor: str, targets: list[dict[str, Any]], checks: list[CheckInfo] | None = None
) -> tuple[list[dict[str, Any]], str]:
    stream = io.StringIO()
    scan = _scan(checks)
    writer = SiemWriter(stream, flavor, clock=lambda: FIXED_NOW, tool_version="0.1.0")
    writer.start(scan)
    for target in targets:
        writer.add(_typed(target))
    writer.finish(scan, _summary_of(targets))
    text = stream.getvalue()
    return [json.loads(line) for line in text.split("\n")[:-1]], text


def _get(event: dict[str, Any], dotted: str) -> Any:
    """A field by its ECS name, walking nested objects (a dotted key would not match)."""
    if dotted in event:
        return event[dotted]
    value: Any = event
    for part in dotted.split("."):
        assert isinstance(value, dict), f"{dotted}: {part!r} is not inside an object"
        assert part in value, f"{dotted}: missing {part!r}"
        value = value[part]
    return value


def _dotted_keys(value: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if "." in key:
                found.append(f"{path}{key}")
            found += _dotted_keys(item, f"{path}{key}.")
    elif isinstance(value, list):
        for item in value:
            found += _dotted_keys(item, path)
    return found


def _assert_ecs_type(name: str, value: Any, ecs_type: str) -> None:
    if ecs_type.endswith("[]"):
        assert isinstance(value, list) and value, f"{name}: expected a non-empty array, got {value!r}"
        for item in value:
            _assert_ecs_type(name, item, ecs_type[:-2])
        return
    if ecs_type in ("keyword", "match_only_text"):
        assert isinstance(value, str), f"{name}: {value!r} is not a string"
    elif ecs_type == "long":
        assert isinstance(value, int) and not isinstance(value, bool), f"{name}: {value!r} is not an integer"
    elif ecs_type == "boolean":
        assert isinstance(value, bool), f"{name}: {value!r} is not a boolean"
    elif ecs_type == "ip":
        assert isinstance(value, str), f"{name}: {value!r} is not a string"
        ipaddress.ip_address(value)
    elif ecs_type == "date":
        assert isinstance(value, str), f"{name}: {value!r} is not a string"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value), f"{name}: {value!r}"
        assert datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    else:  # pragma: no cover - a typo in the table above
        raise AssertionError(f"unknown ECS type {ecs_type}")


# -- the demo report ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "mtls_audit.scanner.cli", "demo", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((output / "report.json").read_text(encoding="utf-8"))


def _write_report(flavor: str, report: dict[str, Any], destination: Path) -> list[dict[str, Any]]:
    document = ReportDocument.from_dict(report)
    writer = SiemWriter(destination, flavor, clock=lambda: FIXED_NOW)
    writer.start(document.scan)
    for target in document.targets:
        writer.add(target)
    writer.finish(document.scan, document.summary)
    text = destination.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


@pytest.mark.parametrize("flavor", ["ecs", "ocsf"])
def test_demo_report_gives_one_line_per_finding_plus_a_summary(
    flavor: str, demo_report: dict[str, Any], tmp_path: Path
) -> None:
    events = _write_report(flavor, demo_report, tmp_path / "siem.ndjson")
    findings = [(t["name"], f["check"]) for t in demo_report["targets"] for f in t["findings"]]
    assert len(findings) == 120
    assert len(events) == len(findings) + 1
    if flavor == "ecs":
        assert [e["event"]["dataset"] for e in events] == ["mtls_audit.finding"] * len(findings) + ["mtls_audit.scan"]
        seen = [(e["mtls"]["target"]["name"], e["rule"]["id"]) for e in events[:-1]]
    else:
        assert [e["class_uid"] for e in events] == [2003] * len(findings) + [6007]
        seen = [(e["resources"][0]["name"], e["compliance"]["control"]) for e in events[:-1]]
    assert seen == findings  # inventory order, then the target's finding order


def test_demo_report_ecs_fields_are_nested_and_typed(demo_report: dict[str, Any], tmp_path: Path) -> None:
    events = _write_report("ecs", demo_report, tmp_path / "ecs.ndjson")
    for event in events:
        assert _dotted_keys(event) == []
    for event in events[:-1]:
        for name, ecs_type in ECS_FINDING_FIELDS.items():
            _assert_ecs_type(name, _get(event, name), ecs_type)
        assert event["ecs"]["version"] == ECS_VERSION
        assert re.fullmatch(r"[0-9A-F]{64}", event["tls"]["server"]["hash"]["sha256"])
        assert re.fullmatch(r"[0-9A-F]+", event["tls"]["server"]["x509"]["serial_number"])
        assert event["tls"]["version"] == "1.3" and event["tls"]["version_protocol"] == "tls"
        assert event["tls"]["established"] is True
        assert 0 < event["destination"]["port"] < 65536
    for name, ecs_type in ECS_SUMMARY_FIELDS.items():
        _assert_ecs_type(name, _get(events[-1], name), ecs_type)
    # the demo's verdicts: 11 fail, 1 warn, 88 pass (and 20 skips, outcome unknown)
    outcomes = [e["event"]["outcome"] for e in events[:-1]]
    assert (outcomes.count("failure"), outcomes.count("success")) == (12, 88)


def test_categorization_uses_only_allowed_ecs_values() -> None:
    events, _ = _write("ecs", [_target(), _target(name="second")])
    assert len(events) == 13
    for event in events:
        kind, categories, types = event["event"]["kind"], event["event"]["category"], event["event"]["type"]
        assert kind in ECS_EVENT_KIND
        assert isinstance(categories, list) and categories and set(categories) <= ECS_EVENT_CATEGORY
        assert isinstance(types, list) and types and set(types) <= ECS_EVENT_TYPE
        assert event["event"]["outcome"] in ECS_EVENT_OUTCOME
        for category in categories:
            assert set(types) <= ECS_EXPECTED_TYPES[category], (category, types)
    assert {e["event"]["kind"] for e in events[:-1]} == {"state"}
    assert events[-1]["event"]["kind"] == "event"


def test_ecs_fields_carry_the_target_facts() -> None:
    events, _ = _write("ecs", [_target()])
    event = events[0]
    assert event["@timestamp"] == "2026-03-01T12:34:56.789Z"
    assert event["event"]["created"] == "2026-03-01T12:40:00.123Z"
    assert event["message"] == "a client without a certificate gets in (TLSv1.3: optional)"
    assert event["destination"] == {
        "address": "10.20.30.40",
        "ip": "10.20.30.40",
        "port": 8443,
        "domain": "payments.internal",
    }
    assert event["tls"]["version"] == "1.3"  # the highest version our own identity completed
    assert event["tls"]["cipher"] == "TLS_AES_256_GCM_SHA384"
    assert event["tls"]["established"] is True
    assert event["tls"]["client"] == {"server_name": "payments.internal"}
    server = event["tls"]["server"]
    assert server["hash"]["sha256"] == LEAF_SHA.upper()
    assert server["x509"] == {
        "subject": {"distinguished_name": "CN=payments.internal,O=Example"},
        "issuer": {"distinguished_name": "CN=Example Issuing CA,O=Example"},
        "alternative_names": ["payments.internal", "10.20.30.40", "spiffe://example/payments"],
        "not_before": "2026-01-01T00:00:00.000Z",
        "not_after": "2027-01-01T00:00:00.000Z",
        "serial_number": "0A1B2C3D4E5F",
    }
    assert event["observer"] == {"vendor": "mtls-audit", "product": "mtls-audit", "version": "0.1.0", "type": "scanner"}
    assert event["related"] == {"ip": ["10.20.30.40"], "hosts": ["payments.internal"], "hash": [LEAF_SHA.upper()]}
    assert event["tags"] == ["prod", "pci"]
    registered = {check.id: check for check in load_checks()}
    for finding_event in events[:-1]:
        check = registered[finding_event["rule"]["id"]]
        assert finding_event["rule"]["name"] == check.title
        assert finding_event["rule"]["description"] == check.description
        assert finding_event["rule"]["ruleset"] == "mtls-audit"
    assert events[0]["rule"]["category"] == "client-authentication"
    assert events[2]["rule"]["category"] == "tls-configuration"


def test_ecs_destination_for_ipv6_and_dns_hosts() -> None:
    events, _ = _write("ecs", [_target(address="[2001:db8::1]:9443"), _target(address="api.internal:443")])
    v6, dns = events[0], events[6]
    assert v6["destination"] == {
        "address": "2001:db8::1",
        "ip": "2001:db8::1",
        "port": 9443,
        "domain": "payments.internal",
    }
    assert dns["destination"] == {"address": "api.internal", "port": 443, "domain": "api.internal"}
    assert "ip" not in dns["related"]


def test_mtls_fields_summarize_the_probes_behind_the_verdict() -> None:
    events, _ = _write("ecs", [_target()])
    cert_required, wrong_ca = events[0]["mtls"], events[1]["mtls"]
    assert cert_required["status"] == "fail" and cert_required["severity"] == "critical"
    assert cert_required["probe"] == ["no-cert@tls1.2", "no-cert@tls1.3"]
    assert cert_required["blocking_layer"] == ["tls-handshake"]
    assert cert_required["alert"] == [{"code": 116, "name": "certificate_required"}]
    assert cert_required["client_auth"][1] == {
        "version": "TLSv1.3",
        "classification": "optional",
        "blocked_at": None,
        "certificate_request_seen": True,
        "detail": "accepted (HTTP answered 200 OK)",
    }
    assert json.loads(cert_required["evidence"]) == _findings()[0]["evidence"]
    assert cert_required["remediation"] == "fix client-cert-required"
    assert cert_required["target"] == {
        "name": "payments-api",
        "address": "10.20.30.40:8443",
        "server_name": "payments.internal",
        "status": "fail",
    }
    assert wrong_ca["blocking_layer"] == ["tls-post-handshake", "http"]
    assert wrong_ca["alert"] == [{"code": 116, "name": "certificate_required"}]
    assert "alert" not in events[2]["mtls"] and "probe" not in events[2]["mtls"]


def test_ocsf_required_attributes_are_present_and_typed(demo_report: dict[str, Any], tmp_path: Path) -> None:
    events = _write_report("ocsf", demo_report, tmp_path / "ocsf.ndjson")
    scanned = {t["name"]: datetime.fromisoformat(t["scanned_at"]) for t in demo_report["targets"]}
    addresses = {t["name"]: t["address"] for t in demo_report["targets"]}
    texts = demo_report.get("texts", [])  # a remediation findings repeat is an index there (1.3)
    remediations = {
        (t["name"], f["check"]): texts[r] if isinstance(r := f.get("remediation", ""), int) else r
        for t in demo_report["targets"]
        for f in t["findings"]
    }
    for event in events:
        for attribute in ("activity_id", "category_uid", "class_uid", "type_uid", "severity_id", "time"):
            assert isinstance(event[attribute], int) and not isinstance(event[attribute], bool), attribute
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert event["severity"] == OCSF_SEVERITY_CAPTIONS[event["severity_id"]]
        assert event["metadata"]["version"] == OCSF_VERSION
        product = event["metadata"]["product"]
        assert product["name"] == "mtls-audit" and product["vendor_name"] == "mtls-audit"
        assert isinstance(product["version"], str) and product["version"]
        assert isinstance(event["message"], str) and event["message"]
    for event in events[:-1]:
        assert (event["category_uid"], event["class_uid"], event["activity_id"], event["type_uid"]) == (
            2,
            2003,
            1,
            200301,
        )
        name = event["resources"][0]["name"]
        expected_ms = int(scanned[name].timestamp() * 1000)
        assert event["time"] == expected_ms == event["finding_info"]["created_time"]
        info = event["finding_info"]
        assert isinstance(info["uid"], str) and isinstance(info["title"], str) and info["title"]
        assert info["analytic"]["uid"] == event["compliance"]["control"] and info["analytic"]["type_id"] == 1
        compliance = event["compliance"]
        assert isinstance(compliance["control"], str) and compliance["standards"] == ["mtls-audit"]
        assert compliance["status_id"] in OCSF_COMPLIANCE_STATUS_IDS and isinstance(compliance["status"], str)
        resource = event["resources"][0]
        assert resource["uid"] == addresses[name] and resource["type"] == "network_endpoint"
        assert resource["role_id"] == 1 and resource["ip"] == "127.0.0.1"
        assert (event["status_id"], event["status"]) == (1, "New")
        remediation = remediations[(name, event["compliance"]["control"])]
        if remediation:  # the remediation object requires desc: present only with a text
            assert event["remediation"] == {"desc": remediation}
        else:
            assert "remediation" not in event
        assert isinstance(event["unmapped"]["mtls"], dict)
    assert len({e["finding_info"]["uid"] for e in events[:-1]}) == 120  # one per target × check


def test_ocsf_scan_summary_is_a_scan_activity(demo_report: dict[str, Any], tmp_path: Path) -> None:
    summary = _write_report("ocsf", demo_report, tmp_path / "ocsf.ndjson")[-1]
    assert (summary["category_uid"], summary["class_uid"], summary["activity_id"], summary["type_uid"]) == (
        6,
        6007,
        2,
        600702,
    )
    assert summary["scan"]["type_id"] == 99 and isinstance(summary["scan"]["uid"], str)
    assert summary["total"] == summary["num_network_items"] == 12
    assert summary["num_detections"] == 12  # 11 fail + 1 warn
    assert summary["start_time"] <= summary["end_time"] == summary["time"]
    assert summary["duration"] == summary["end_time"] - summary["start_time"]
    assert (summary["status_id"], summary["status"]) == (2, "Failure")
    assert summary["severity_id"] == 5  # the worst failing finding is critical
    assert summary["unmapped"]["mtls"]["summary"] == demo_report["summary"]


def test_ecs_scan_summary_counts_and_verdict() -> None:
    passing = _target(status="pass", findings=[_finding("tls13-only", "pass", "medium")])
    events, _ = _write("ecs", [passing])
    summary = events[-1]
    assert summary["event"]["outcome"] == "success" and summary["event"]["severity"] == 1
    assert summary["event"]["duration"] == 11_500_000_000
    assert summary["@timestamp"] == summary["event"]["end"] == "2026-03-01T12:35:01.500Z"
    assert summary["mtls"]["summary"] == {
        "targets": 1,
        "targets_by_status": {"pass": 1},
        "findings_by_status": {"pass": 1},
    }
    assert summary["message"] == "mtls-audit scan finished: 1 targets (1 pass), 1 findings (1 pass)"
    failing, _ = _write("ecs", [_target()])
    assert failing[-1]["event"]["outcome"] == "failure" and failing[-1]["event"]["severity"] == 5


def test_finding_uid_is_stable_per_target_and_check() -> None:
    first, _ = _write("ocsf", [_target()])
    again, _ = _write("ocsf", [_target(address="10.99.0.1:443", scanned_at="2027-01-01T00:00:00+00:00")])
    renamed, _ = _write("ocsf", [_target(name="payments-api-2")])
    uids = [e["finding_info"]["uid"] for e in first[:-1]]
    assert uids == [e["finding_info"]["uid"] for e in again[:-1]]
    assert len(set(uids)) == 6
    assert set(uids).isdisjoint(e["finding_info"]["uid"] for e in renamed[:-1])
    assert uids[0] == finding_uid("payments-api", "client-cert-required")
    ecs, _ = _write("ecs", [_target()])
    assert [e["mtls"]["finding_uid"] for e in ecs[:-1]] == uids


def test_mapping_tables_cover_the_report_schema_enums() -> None:
    definitions = schema()["$defs"]
    assert list(STATUS_MAP) == definitions["status"]["enum"]
    assert list(SEVERITY_MAP) == definitions["severity"]["enum"]
    assert {m.ecs_outcome for m in STATUS_MAP.values()} <= ECS_EVENT_OUTCOME
    assert {m.ocsf_status_id for m in STATUS_MAP.values()} <= OCSF_COMPLIANCE_STATUS_IDS
    for mapping in SEVERITY_MAP.values():
        assert OCSF_SEVERITY_CAPTIONS[mapping.ocsf_severity_id] == mapping.ocsf_severity
    # worse severities rank higher on both scales
    assert [m.ecs_severity for m in SEVERITY_MAP.values()] == sorted(m.ecs_severity for m in SEVERITY_MAP.values())
    assert len({m.ocsf_severity_id for m in SEVERITY_MAP.values()}) == len(SEVERITY_MAP)


def test_severity_and_status_are_the_same_table_in_both_flavors() -> None:
    combos = list(itertools.product(STATUS_MAP, SEVERITY_MAP))
    findings = [_finding(f"check-{i}", status, severity) for i, (status, severity) in enumerate(combos)]
    target = _target(findings=findings)
    ecs, _ = _write("ecs", [target], checks=[])
    ocsf, _ = _write("ocsf", [target], checks=[])
    assert len(ecs) == len(ocsf) == len(combos) + 1
    for (status, severity), e, o in zip(combos, ecs, ocsf, strict=False):
        assert (e["mtls"]["status"], e["mtls"]["severity"]) == (status, severity)
        assert o["unmapped"]["mtls"]["severity"] == severity  # the check's own severity is always kept
        assert e["event"]["outcome"] == STATUS_MAP[status].ecs_outcome
        assert (o["compliance"]["status_id"], o["compliance"]["status"]) == STATUS_MAP[status][1:]
        assert o["compliance"]["status_code"] == status
        # the event's severity: the check's for fail/warn/error, informational for pass/skip
        expected = SEVERITY_MAP["info" if status in ("pass", "skip") else severity]
        finding = Finding(f"check-{status}", Status(status), Severity(severity), "s")
        assert event_severity(finding) == expected
        assert e["event"]["severity"] == expected.ecs_severity
        assert (o["severity_id"], o["severity"]) == expected[1:]
        assert o["unmapped"]["mtls"]["status"] == status
    assert STATUS_MAP["skip"].ecs_outcome == "unknown"


def test_passing_and_skipped_findings_are_informational_events() -> None:
    """A passing critical check is good news, not a critical event: SIEM rules keyed on
    severity must not fire on it. The check's severity stays in mtls.severity."""
    ecs, _ = _write("ecs", [_target()])
    ocsf, _ = _write("ocsf", [_target()])
    by_check = {e["rule"]["id"]: e for e in ecs[:-1]}
    wrong_ca = by_check["wrong-ca-rejected"]  # critical, passing
    assert wrong_ca["event"]["severity"] == 1 and wrong_ca["mtls"]["severity"] == "critical"
    assert by_check["san-match"]["event"]["severity"] == 1  # high, skipped
    assert by_check["client-cert-required"]["event"]["severity"] == 5  # critical, failing
    assert by_check["expiry-soon"]["event"]["severity"] == 4  # high, warning
    assert by_check["chain-complete"]["event"]["severity"] == 3  # medium, undecided
    ocsf_by_check = {o["compliance"]["control"]: o for o in ocsf[:-1]}
    assert (ocsf_by_check["wrong-ca-rejected"]["severity_id"], ocsf_by_check["wrong-ca-rejected"]["severity"]) == (
        1,
        "Informational",
    )
    assert ocsf_by_check["wrong-ca-rejected"]["unmapped"]["mtls"]["severity"] == "critical"
    assert ocsf_by_check["client-cert-required"]["severity_id"] == 5


def test_warn_is_a_failed_compliance_check_and_keeps_its_own_status_code() -> None:
    """OCSF 1.8 "Warning" means the check did not yield a result; a warning did yield one
    (the requirement is not met yet), so it is Fail, with our status in status_code."""
    ocsf, _ = _write("ocsf", [_target()])
    warned = next(o for o in ocsf[:-1] if o["compliance"]["control"] == "expiry-soon")
    assert (warned["compliance"]["status_id"], warned["compliance"]["status"]) == (3, "Fail")
    assert warned["compliance"]["status_code"] == "warn"


def test_skipped_findings_are_emitted_with_an_unknown_outcome() -> None:
    ecs, _ = _write("ecs", [_target()])
    ocsf, _ = _write("ocsf", [_target()])
    skipped_ecs = [e for e in ecs[:-1] if e["mtls"]["status"] == "skip"]
    skipped_ocsf = [e for e in ocsf[:-1] if e["unmapped"]["mtls"]["status"] == "skip"]
    assert [e["rule"]["id"] for e in skipped_ecs] == ["san-match"]
    assert skipped_ecs[0]["event"]["outcome"] == "unknown"
    assert [e["compliance"]["control"] for e in skipped_ocsf] == ["san-match"]
    assert (skipped_ocsf[0]["compliance"]["status_id"], skipped_ocsf[0]["compliance"]["status"]) == (99, "Skipped")


@pytest.mark.parametrize("flavor", ["ecs", "ocsf"])
def test_hostile_text_stays_on_one_line_and_round_trips(flavor: str, tmp_path: Path) -> None:
    target = _target(
        name=HOSTILE["html"],
        tags=[HOSTILE["ansi"]],
        findings=[
            _finding(
                "san-match",
                "fail",
                "high",
                HOSTILE_TEXT,
                remediation=HOSTILE["newline"],
                evidence={"reason": HOSTILE_TEXT},
            )
        ],
    )
    target["certificates"][0]["subject"] = HOSTILE_TEXT
    target["certificates"][0]["subject_alternative_names"] = ["DNS:" + HOSTILE["newline"], HOSTILE["separators"]]
    path = tmp_path / "hostile.ndjson"
    writer = SiemWriter(path, flavor, clock=lambda: FIXED_NOW)
    writer.start(SCAN)
    writer.add(_typed(target))
    writer.finish(SCAN, _summary_of([target]))
    raw = path.read_bytes()
    assert raw.count(b"\n") == 2
    for forbidden in (b"\r", b"\x1b", b"\x00", b"\x07", "\u2028".encode(), "\u2029".encode(), "\u0085".encode()):
        assert forbidden not in raw
    text = raw.decode("utf-8")  # strict: lone surrogates were escaped, not written raw
    assert len(text.splitlines()) == 2  # even splitters that break on U+2028/U+0085 see two lines
    event = json.loads(text.split("\n")[0])
    if flavor == "ecs":
        assert event["message"] == HOSTILE_TEXT
        assert event["tls"]["server"]["x509"]["subject"]["distinguished_name"] == HOSTILE_TEXT
        assert event["tls"]["server"]["x509"]["alternative_names"] == [HOSTILE["newline"], HOSTILE["separators"]]
        assert event["mtls"]["remediation"] == HOSTILE["newline"]
        assert event["mtls"]["target"]["name"] == HOSTILE["html"]
        assert event["tags"] == [HOSTILE["ansi"]]
        extras = event["mtls"]
    else:
        assert event["message"] == event["finding_info"]["desc"] == HOSTILE_TEXT
        assert event["resources"][0]["data"]["certificate"]["subject"] == HOSTILE_TEXT
        assert event["resources"][0]["name"] == HOSTILE["html"]
        assert event["resources"][0]["labels"] == [HOSTILE["ansi"]]
        assert event["remediation"]["desc"] == HOSTILE["newline"]
        extras = event["unmapped"]["mtls"]
    assert json.loads(extras["evidence"]) == {"reason": HOSTILE_TEXT}
    assert extras["finding_uid"] == finding_uid(HOSTILE["html"], "san-match")


def test_line_separators_are_escaped_and_other_unicode_is_written_as_is(tmp_path: Path) -> None:
    summary = HOSTILE["separators"] + " " + HOSTILE["unicode"]  # no lone surrogate here
    target = _target(findings=[_finding("san-match", "fail", "high", summary)])
    path = tmp_path / "unicode.ndjson"
    writer = SiemWriter(path, "ecs", clock=lambda: FIXED_NOW)
    writer.start(SCAN)
    writer.add(_typed(target))
    writer.finish(SCAN, _summary_of([target]))
    text = path.read_text(encoding="utf-8")
    assert HOSTILE["unicode"] in text  # UTF-8, not \\u escapes (ensure_ascii=False)
    assert "\\u2028" in text and "\\u2029" in text and "\\u0085" in text
    assert len(text.splitlines()) == 2
    assert json.loads(text.splitlines()[0])["message"] == summary


def test_stream_that_cannot_encode_gets_ascii_escapes() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", newline="\n")
    target = _target(findings=[_finding("san-match", "fail", "high", HOSTILE["unicode"])])
    writer = SiemWriter(stream, "ecs", clock=lambda: FIXED_NOW)
    writer.start(SCAN)
    writer.add(_typed(target))
    writer.finish(SCAN, _summary_of([target]))
    lines = raw.getvalue().decode("ascii").split("\n")
    assert len(lines) == 3 and lines[2] == ""
    assert json.loads(lines[0])["message"] == HOSTILE["unicode"]


def test_lines_are_written_and_flushed_as_each_target_arrives(tmp_path: Path) -> None:
    path = tmp_path / "out" / "siem.ndjson"
    path.parent.mkdir()  # writers do not create directories: the CLI checks output paths first
    writer = SiemWriter(path, "ecs", clock=lambda: FIXED_NOW)
    writer.start(SCAN)
    assert path.exists() and path.read_text(encoding="utf-8") == ""
    writer.add(_typed(_target()))
    first = path.read_text(encoding="utf-8").split("\n")
    assert len(first) == 7 and first[-1] == ""
    assert [json.loads(line)["rule"]["id"] for line in first[:-1]] == [f["check"] for f in _findings()]
    writer.add(_typed(_target(name="second", findings=_findings()[:2])))
    second = path.read_text(encoding="utf-8").split("\n")
    assert len(second) == 9
    assert {json.loads(line)["event"]["dataset"] for line in second[:-1]} == {"mtls_audit.finding"}
    writer.finish(SCAN, _summary_of([_target()]))
    final = path.read_text(encoding="utf-8").split("\n")
    assert len(final) == 10 and json.loads(final[-2])["event"]["dataset"] == "mtls_audit.scan"


def test_finish_closes_a_file_but_leaves_a_stream_open(tmp_path: Path) -> None:
    writer = SiemWriter(tmp_path / "siem.ndjson", "ocsf", clock=lambda: FIXED_NOW)
    writer.start(SCAN)
    handle = writer._file
    writer.add(_typed(_target()))
    assert writer.finish(SCAN, _summary_of([_target()])) == tmp_path / "siem.ndjson"
    assert handle is not None and handle.closed
    with pytest.raises(RuntimeError):
        writer.add(_typed(_target()))

    stream = io.StringIO()
    writer = SiemWriter(stream, "ocsf", clock=lambda: FIXED_NOW)
    writer.start(SCAN)
    writer.add(_typed(_target()))
    assert writer.finish(SCAN, _summary_of([_target()])) is None
    assert not stream.closed
    assert len(stream.getvalue().split("\n")) == 8


def test_an_existing_file_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "siem.ndjson"
    path.write_text('{"earlier":"scan"}\n', encoding="utf-8")
    writer = SiemWriter(path, "ecs", clock=lambda: FIXED_NOW)
    writer.start(SCAN)
    writer.add(_typed(_target()))
    writer.finish(SCAN, _summary_of([_target()]))
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == '{"earlier":"scan"}' and len(lines) == 9


def test_waivers_and_baselines_drive_the_finding_workflow() -> None:
    waiver = {
        "target": "payments-api",
        "check": "client-cert-required",
        "reason": "legacy client until Q3",
        "owner": "team-payments",
        "expires": "2026-09-30",
    }
    findings = [
        _finding("client-cert-required", "fail", "critical", waived=True, waiver=waiver, baseline="known"),
        _finding("wrong-ca-rejected", "pass", "critical", waived=False, waiver=None, baseline="resolved"),
        _finding("tls13-only", "fail", "medium", waived=False, waiver=None, baseline="new"),
        _finding("chain-complete", "fail", "medium"),  # written before waivers/baselines existed
    ]
    ecs, _ = _write("ecs", [_target(findings=findings)])
    ocsf, _ = _write("ocsf", [_target(findings=findings)])
    workflow = [(o["activity_id"], o["type_uid"], o["status_id"], o["status"]) for o in ocsf[:-1]]
    assert workflow == [
        (2, 200302, 3, "Suppressed"),
        (3, 200303, 4, "Resolved"),
        (1, 200301, 1, "New"),
        (1, 200301, 1, "New"),
    ]
    assert [o["activity_name"] for o in ocsf[:-1]] == ["Update", "Close", "Create", "Create"]
    assert [e["mtls"]["waived"] for e in ecs[:-1]] == [True, False, False, False]
    assert [e["mtls"].get("baseline") for e in ecs[:-1]] == ["known", "resolved", "new", None]
    assert ecs[0]["mtls"]["waiver"] == {
        "reason": "legacy client until Q3",
        "owner": "team-payments",
        "expires": "2026-09-30T00:00:00.000Z",
    }
    _assert_ecs_type("mtls.waiver.expires", ecs[0]["mtls"]["waiver"]["expires"], "date")
    assert "waiver" not in ecs[1]["mtls"]
    assert ocsf[0]["unmapped"]["mtls"]["waiver"] == ecs[0]["mtls"]["waiver"]
    # waived or not, the compliance verdict is the check's
    assert ecs[0]["event"]["outcome"] == "failure" and ocsf[0]["compliance"]["status_id"] == 3


def test_an_unregistered_check_still_gets_events() -> None:
    target = _target(findings=[_finding("acme-plugin-check", "fail", "low", "plugin says no")])
    ecs, _ = _write("ecs", [target], checks=[])
    ocsf, _ = _write("ocsf", [target], checks=[])
    assert ecs[0]["rule"] == {
        "id": "acme-plugin-check",
        "name": "acme-plugin-check",
        "category": "tls-configuration",
        "ruleset": "mtls-audit",
    }
    assert ocsf[0]["finding_info"]["title"] == "acme-plugin-check"
    assert "desc" not in ocsf[0]["compliance"]


def test_a_target_without_tls_facts_omits_them() -> None:
    unreachable = _target(
        status="error",
        error="connection refused",
        accepted_versions=[],
        client_auth=[],
        certificates=[],
        probes=[
            _probe("valid", "TLSv1.3", "tls1.3", connected=False, handshake_completed=False, negotiated_version=None)
        ],
        findings=[_finding("client-cert-required", "error", "critical", "target could not be scanned: refused")],
    )
    ecs, _ = _write("ecs", [unreachable])
    assert ecs[0]["tls"] == {"established": False, "client": {"server_name": "payments.internal"}}
    assert ecs[0]["mtls"]["target"]["error"] == "connection refused"
    assert ecs[0]["event"]["outcome"] == "unknown"
    ocsf, _ = _write("ocsf", [unreachable])
    # OCSF 1.8: compliance status 2 Warning is "did not yield a result due to missing information"
    compliance = ocsf[0]["compliance"]
    assert (compliance["status_id"], compliance["status"], compliance["status_code"]) == (2, "Warning", "error")
    assert ocsf[0]["severity_id"] == 5 and ecs[0]["event"]["severity"] == 5  # undecided keeps the check's severity
    assert "certificate" not in ocsf[0]["resources"][0]["data"]


def test_mapping_table_markdown_renders_both_tables() -> None:
    text = mapping_table_markdown()
    for status, mapping in STATUS_MAP.items():
        row = f"| `{status}` | `{mapping.ecs_outcome}` | `{mapping.ocsf_status_id}` | {mapping.ocsf_status} |"
        assert text.count(row) == 1, row
    for severity, mapping in SEVERITY_MAP.items():
        row = f"| `{severity}` | `{mapping.ecs_severity}` | `{mapping.ocsf_severity_id}` | {mapping.ocsf_severity} |"
        assert text.count(row) == 1, row
    assert "| `skip` | `unknown` | `99` | Skipped |" in text
    tables = [block.splitlines() for block in text.strip().split("\n\n")]
    assert len(tables) == 2
    for rows in tables:
        assert re.fullmatch(r"(\|---)+\|", rows[1])
        assert {row.count("|") for row in rows} == {5}


def test_unknown_flavor_is_rejected() -> None:
    with pytest.raises(ValueError, match="splunk"):
        SiemWriter(io.StringIO(), "splunk")


def test_input_targets_are_not_modified() -> None:
    target = _typed(_target())
    before = copy.deepcopy(target.to_dict())
    for flavor in ("ecs", "ocsf"):
        writer = SiemWriter(io.StringIO(), flavor, clock=lambda: FIXED_NOW)
        writer.start(SCAN)
        writer.add(target)
        writer.finish(SCAN, _summary_of([_target()]))
    assert target.to_dict() == before
