"""The SIEM events against the consumers' own schemas, vendored under tests/schemas/:
OCSF 1.8.0 (class 2003 Compliance Finding, class 6007 Scan Activity: required
attributes, attribute names, types, enum values and their captions) and ECS 9.3.0
(every field outside ``mtls.*`` exists in ECS, with a compatible type; the
categorization fields use allowed values)."""

from __future__ import annotations

import csv
import ipaddress
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from test_siem import FIXED_NOW, HOSTILE, HOSTILE_TEXT, _finding, _probe, _target, _write

from mtls_audit.reports.siem.writer import OCSF_VERSION, SiemWriter
from mtls_audit.scanner.model.report import ReportDocument

SCHEMAS = Path(__file__).parent / "schemas"
OCSF = {
    name: json.loads((SCHEMAS / "ocsf-1.8.0" / f"{name}.json").read_text())
    for name in ("compliance_finding", "scan_activity")
}
OCSF_BY_CLASS = {schema["class"]["uid"]: schema for schema in OCSF.values()}
ECS_FIELDS = {row["Field"]: row for row in csv.DictReader((SCHEMAS / "ecs-9.3.0" / "fields.csv").open())}
ECS_ALLOWED = json.loads((SCHEMAS / "ecs-9.3.0" / "allowed_values.json").read_text())


# -- OCSF -------------------------------------------------------------------------------

_OCSF_SCALARS = {
    "string_t": str,
    "integer_t": int,
    "long_t": int,
    "float_t": (int, float),
    "boolean_t": bool,
}


# The dictionary's enums of these hold only 0; each class defines its own value, which
# ocsf_problems compares with the class itself.
_ENUMS_SET_BY_THE_CLASS = frozenset({"category_uid", "class_uid", "type_uid"})


def ocsf_problems(event: dict[str, Any]) -> list[str]:
    """Everything in ``event`` that its OCSF 1.8.0 class does not allow."""
    schema = OCSF_BY_CLASS.get(event.get("class_uid"))
    if schema is None:
        return [f"class_uid {event.get('class_uid')!r} is not one of {sorted(OCSF_BY_CLASS)}"]
    event_class = schema["class"]
    problems = []
    if event.get("category_uid") != event_class["category_uid"]:
        problems.append(f"category_uid {event.get('category_uid')} is not {event_class['category_uid']}")
    if event.get("class_name") != event_class["caption"] or event.get("category_name") != event_class["category_name"]:
        problems.append("class_name/category_name are not the class's captions")
    if event.get("type_uid") != event_class["uid"] * 100 + event.get("activity_id", -1):
        problems.append("type_uid is not class_uid * 100 + activity_id")
    problems += _object_problems(event, event_class["attributes"], schema["objects"], "")
    return problems


def _object_problems(
    value: dict[str, Any], attributes: dict[str, Any], objects: dict[str, Any], path: str
) -> list[str]:
    problems = []
    for name, attribute in attributes.items():
        if attribute["requirement"] == "required" and "profile" not in attribute and name not in value:
            problems.append(f"{path}{name}: required, missing")
    for name, item in value.items():
        where = f"{path}{name}"
        attribute = attributes.get(name)
        if attribute is None:
            problems.append(f"{where}: not an attribute of this class/object")
            continue
        if attribute.get("profile"):
            problems.append(f"{where}: belongs to the {attribute['profile']} profile, which the event does not apply")
        if attribute.get("deprecated"):
            problems.append(f"{where}: deprecated in OCSF 1.8.0")
        items = item if attribute["is_array"] else [item]
        if attribute["is_array"] and not isinstance(item, list):
            problems.append(f"{where}: must be an array")
            continue
        for element in items:
            problems += _value_problems(element, attribute, objects, where)
        if "enum" in attribute and name not in _ENUMS_SET_BY_THE_CLASS:
            if str(item) not in attribute["enum"]:
                problems.append(f"{where}: {item!r} is not in the enum {sorted(attribute['enum'], key=int)}")
            else:
                sibling = attribute.get("sibling")
                caption = attribute["enum"][str(item)]
                # For 99 "Other" the sibling holds the source's own name; otherwise the caption.
                if sibling and item != 99 and sibling in value and value[sibling] != caption:
                    problems.append(f"{path}{sibling}: {value[sibling]!r} is not the caption {caption!r} of {item}")
    return problems


def _value_problems(element: Any, attribute: dict[str, Any], objects: dict[str, Any], where: str) -> list[str]:
    kind, base = attribute["type"], attribute["base_type"]
    if kind == "json_t" or kind == "object":
        return []  # free-form: unmapped, resource data
    if kind in objects:
        if not isinstance(element, dict):
            return [f"{where}: must be an object ({kind})"]
        return _object_problems(element, objects[kind]["attributes"], objects, where + ".")
    expected = _OCSF_SCALARS.get(base)
    if expected is None:
        return [f"{where}: type {kind} is not checked here; add it to the test"]
    if isinstance(element, bool) and expected is not bool:
        return [f"{where}: {element!r} is a boolean, not {kind}"]
    if not isinstance(element, expected):
        return [f"{where}: {element!r} is not {kind}"]
    if kind == "ip_t":
        ipaddress.ip_address(element)
    return []


# -- ECS --------------------------------------------------------------------------------

_ECS_COMPATIBLE = {
    "keyword": str,
    "constant_keyword": str,
    "wildcard": str,
    "match_only_text": str,
    "text": str,
    "ip": str,
    "date": str,
    "long": int,
    "integer": int,
    "short": int,
    "byte": int,
    "float": (int, float),
    "double": (int, float),
    "scaled_float": (int, float),
    "boolean": bool,
}
_ECS_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{path}{key}.")]
    return [(path[:-1], value)]


def ecs_problems(event: dict[str, Any]) -> list[str]:
    """Every field outside ``mtls.*`` that ECS 9.3.0 does not define with a compatible type."""
    problems = []
    for name, value in _leaves(event):
        if name == "mtls" or name.startswith("mtls."):
            continue
        field = ECS_FIELDS.get(name)
        if field is None:
            problems.append(f"{name}: not an ECS 9.3.0 field")
            continue
        values = value if isinstance(value, list) else [value]
        if field["Normalization"] == "array" and not isinstance(value, list):
            problems.append(f"{name}: ECS normalizes it to an array")
        expected = _ECS_COMPATIBLE.get(field["Type"])
        if expected is None:
            problems.append(f"{name}: ECS type {field['Type']} is not checked here; add it to the test")
            continue
        for item in values:
            if isinstance(item, bool) and expected is not bool or not isinstance(item, expected):
                problems.append(f"{name}: {item!r} is not compatible with ECS {field['Type']}")
            elif field["Type"] == "ip":
                ipaddress.ip_address(item)
            elif field["Type"] == "date" and not _ECS_DATE.fullmatch(item):
                problems.append(f"{name}: {item!r} is not an ISO 8601 date with a zone")
    event_fields = event.get("event", {})
    for field in ("kind", "outcome"):
        if event_fields.get(field) not in ECS_ALLOWED[f"event.{field}"]:
            problems.append(f"event.{field}: {event_fields.get(field)!r} is not an allowed value")
    for category in event_fields.get("category", []):
        if category not in ECS_ALLOWED["event.category"]:
            problems.append(f"event.category: {category!r} is not an allowed value")
            continue
        expected_types = ECS_ALLOWED["event.category"][category] or []
        for kind in event_fields.get("type", []):
            if kind not in ECS_ALLOWED["event.type"] or kind not in expected_types:
                problems.append(f"event.type: {kind!r} is not expected with category {category!r}")
    return problems


# -- the events -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_document(tmp_path_factory: pytest.TempPathFactory) -> ReportDocument:
    output = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "-m", "mtls_audit.scanner.cli", "demo", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return ReportDocument.from_dict(json.loads((output / "report.json").read_text(encoding="utf-8")))


def _demo_events(flavor: str, document: ReportDocument, tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / f"{flavor}.ndjson"
    writer = SiemWriter(path, flavor, clock=lambda: FIXED_NOW)
    writer.start(document.scan)
    for target in document.targets:
        writer.add(target)
    writer.finish(document.scan, document.summary)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _crafted_targets() -> list[dict[str, Any]]:
    """Every status, a waiver and baselines, an unreachable target, hostile text."""
    waiver = {"target": "*", "check": "tls13-only", "reason": "r", "owner": "o", "expires": "2027-01-01"}
    workflow = _target(
        name="workflow",
        findings=[
            _finding("tls13-only", "fail", "medium", waived=True, waiver=waiver, baseline="known"),
            _finding("wrong-ca-rejected", "pass", "critical", baseline="resolved"),
            _finding("client-cert-required", "fail", "critical", baseline="new"),
            _finding("acme-plugin-check", "warn", "low"),
        ],
    )
    unreachable = _target(
        name="unreachable",
        status="error",
        error="connection refused",
        accepted_versions=[],
        client_auth=[],
        certificates=[],
        probes=[
            _probe("valid", "TLSv1.3", "tls1.3", connected=False, handshake_completed=False, negotiated_version=None)
        ],
        findings=[_finding("client-cert-required", "error", "critical", "target could not be scanned")],
    )
    hostile = _target(name=HOSTILE["html"], tags=[HOSTILE["ansi"]], address="[2001:db8::1]:9443")
    hostile["certificates"][0]["subject"] = HOSTILE_TEXT
    return [_target(), workflow, unreachable, hostile]


def test_the_vendored_schemas_are_the_versions_we_claim() -> None:
    assert {schema["ocsf_version"] for schema in OCSF.values()} == {OCSF_VERSION}
    assert set(OCSF_BY_CLASS) == {2003, 6007}
    assert "tls.server.x509.alternative_names" in ECS_FIELDS and "event.severity" in ECS_FIELDS


@pytest.mark.parametrize("source", ["demo", "crafted"])
def test_ocsf_events_satisfy_the_ocsf_1_8_0_classes(source: str, demo_document: ReportDocument, tmp_path: Path) -> None:
    if source == "demo":
        events = _demo_events("ocsf", demo_document, tmp_path)
    else:
        events, _ = _write("ocsf", _crafted_targets())
    assert {event["class_uid"] for event in events} == {2003, 6007}
    for event in events:
        assert ocsf_problems(event) == [], event.get("message")


@pytest.mark.parametrize("source", ["demo", "crafted"])
def test_ecs_events_use_only_ecs_9_3_fields(source: str, demo_document: ReportDocument, tmp_path: Path) -> None:
    if source == "demo":
        events = _demo_events("ecs", demo_document, tmp_path)
    else:
        events, _ = _write("ecs", _crafted_targets())
    for event in events:
        assert ecs_problems(event) == [], event.get("message")


def test_the_validators_catch_what_they_are_for() -> None:
    """A checker that accepts anything proves nothing: break events on purpose."""
    (finding, *_), _ = _write("ocsf", [_target()])
    broken = json.loads(json.dumps(finding))
    broken["compliance"]["status_id"] = 7
    broken["severity"] = "Critical" if broken["severity_id"] != 5 else "High"
    broken["finding_info"]["colour"] = "red"
    del broken["metadata"]["version"]
    broken["time"] = "yesterday"
    problems = "\n".join(ocsf_problems(broken))
    for expected in (
        "compliance.status_id: 7",
        "severity:",
        "finding_info.colour",
        "metadata.version: required",
        "time:",
    ):
        assert expected in problems, expected
    (ecs_event, *_), _ = _write("ecs", [_target()])
    ecs_event = json.loads(json.dumps(ecs_event))
    ecs_event["destination"]["hostname"] = "x"
    ecs_event["event"]["severity"] = "high"
    ecs_event["event"]["type"] = ["installation"]
    ecs_event["mtls"]["anything"] = {"goes": True}
    problems = "\n".join(ecs_problems(ecs_event))
    assert "destination.hostname: not an ECS" in problems
    assert "event.severity: 'high'" in problems
    assert "event.type: 'installation'" in problems
    assert "mtls" not in problems


def test_ocsf_compliance_status_follows_the_1_8_0_enum_descriptions() -> None:
    """1 Pass, 2 Warning ("did not yield a result due to missing information"), 3 Fail,
    99 Other: our error is OCSF's Warning, our warn a Fail, our skip Other."""
    enum = OCSF["compliance_finding"]["objects"]["compliance"]["attributes"]["status_id"]["enum"]
    assert enum == {"0": "Unknown", "1": "Pass", "2": "Warning", "3": "Fail", "99": "Other"}
    findings = [_finding(f"c-{s}", s, "high") for s in ("pass", "warn", "fail", "error", "skip")]
    events, _ = _write("ocsf", [_target(findings=findings)], checks=[])
    got = {
        e["compliance"]["status_code"]: (e["compliance"]["status_id"], e["compliance"]["status"]) for e in events[:-1]
    }
    assert got == {
        "pass": (1, "Pass"),
        "warn": (3, "Fail"),
        "fail": (3, "Fail"),
        "error": (2, "Warning"),
        "skip": (99, "Skipped"),
    }
    assert datetime.fromtimestamp(events[0]["time"] / 1000).year == 2026
