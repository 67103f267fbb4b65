"""NDJSON for a SIEM: one event per finding, plus one scan-summary event at the end.

Two flavors, chosen per writer:

- ``ecs``: Elastic Common Schema 9.3.0 (``ecs.version``), nested objects, field types as
  the ECS field reference defines them (keyword, long, boolean, date, ip).
- ``ocsf``: OCSF 1.8.0. Each finding is a *Compliance Finding* (``class_uid`` 2003,
  category 2 Findings); the scan summary is a *Scan Activity* (``class_uid`` 6007,
  category 6 Application Activity) with ``activity_id`` 2 Completed.

Lines are written as the scan goes: ``add(target)`` writes that target's findings at once
and flushes, so a SIEM shipper tail-following the file (Filebeat, Fluent Bit, the
Splunk forwarder...) sees them while the scan is still running. The file is written in
place, never via a temporary file and rename, and it is opened for **appending**: like
any log, one file collects many scans and is rotated by the usual tools; truncating it
under a shipper that has not read it yet would lose events. ``finish()`` appends the
summary line and closes the file (a stream the caller passed in, e.g. ``sys.stdout``
for ``-``, is flushed but left open).

Every event is one line: ``json.dumps(ensure_ascii=False, separators=(",", ":"))``
escapes newlines, ESC and every other C0 control; on top of that U+0085, U+2028 and
U+2029 (line breaks for some splitters, Python's ``str.splitlines`` among them) and lone
surrogates (which UTF-8 cannot encode) are written as ``\\uXXXX`` escapes. Parsing the
line gives back exactly the original text: certificate subjects, SANs, HTTP reasons and
summaries are attacker-controlled and are neither trimmed nor "cleaned".

The mapping
-----------

Severity and status are translated through ONE table each, ``SEVERITY_MAP`` and
``STATUS_MAP`` below, used by both flavors (``mapping_table_markdown()`` renders them for
the README). ``event.severity`` uses the same 1–5 scale as OCSF ``severity_id``, so
"severity >= 4" means high or critical in either flavor. Findings keep the check's own
severity whatever their status (a passing critical check is still a critical check);
filter on the outcome/status to alert.

- ``warn`` counts as an ECS ``failure``: the requirement is not met yet (e.g. a
  certificate inside the expiry horizon). OCSF has a ``Warning`` compliance status.
- ``error`` (the scanner could not decide: timeout, ambiguous observation) is an ECS
  ``unknown`` outcome and OCSF compliance status ``0`` Unknown.
- ``skip`` (the check does not apply to that target, e.g. a TLS-only service) is still
  emitted, so the SIEM sees every gate, with ECS outcome ``unknown`` and OCSF compliance
  status ``99`` Other, ``status`` "Skipped".

ECS categorization (values from the ECS allowed-values lists): findings are
``event.kind: state`` — ECS defines ``state`` for a categorical measurement taken at a
point in time, naming "the state of a system regarding compliance with a regulatory
standard (compliant, not compliant)" as an example; that is what a check result is, for
passes as much as failures, so every finding has the same kind (``alert`` is for
detection rules firing on activity). ``event.category: [configuration, network]``
(configuration auditing of a network endpoint) with ``event.type: [info]``, an expected
type of both categories. The summary is ``event.kind: event`` (something happened: the
scan finished), ``event.category: [configuration]``, ``event.type: [info]``.

OCSF finding workflow (optional ``baseline``/``waived`` keys on a finding):
``activity_id`` follows the baseline — ``new`` or none → 1 Create, ``known`` → 2 Update,
``resolved`` → 3 Close — and ``status_id`` is 4 Resolved for a resolved baseline, 3
Suppressed for a waived finding, 1 New otherwise. ``finding_info.uid`` is stable across
scans (a hash of the target name and the check id), so Update/Close refer to the same
finding. ECS carries the same facts as ``mtls.baseline``, ``mtls.waived``, ``mtls.waiver``.

Scan summary: ECS ``event.dataset: mtls_audit.scan``; OCSF Scan Activity. Its outcome
is the scan's overall verdict — the worst target status (``Status.rank`` order: fail,
error, warn, pass, skip) through ``STATUS_MAP``; OCSF ``status_id`` is 1 Success, 2
Failure or 0 Unknown for the outcomes success, failure and unknown. Its severity is the
highest severity among the fail/warn/error findings written (info when there are none).

Where the ECS fields come from: ``@timestamp`` is the target's ``scanned_at`` (the scan's
end for the summary), ``event.created`` the moment the line is written;
``destination.address``/``port`` split the target address, ``destination.ip`` only for an
IP literal, ``destination.domain`` the host when it is a DNS name, else the server name;
``tls.*`` describe our own identity's completed handshake on the highest TLS version
(any completed handshake when no identity is configured; ``tls.established: false`` when
none completed) and the leaf certificate the server presented, with ``tls.server.hash.sha256``
and ``x509.serial_number`` in uppercase hex as ECS asks and SANs without their ``DNS:``/
``IP:``/``URI:`` prefix; ``rule.*`` is the check (id, title, description, ruleset
``mtls-audit``, category ``client-authentication`` or ``tls-configuration``). OCSF puts the
same endpoint facts in ``resources[0]`` (``uid`` = address, ``data`` = port, TLS, leaf).

Our own fields live under ``mtls`` in ECS and ``unmapped.mtls`` in OCSF (the same
object): raw status and severity, the target, per-version client-auth classification,
the probes behind the verdict with where they were blocked and the alerts seen, waiver
and baseline, and the finding's free-form evidence as a JSON-encoded string (one
keyword-like field, so per-check evidence shapes never clash in an index mapping).
``rule.reference`` is omitted: the project has no published documentation URL yet.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple

ECS_VERSION = "9.3.0"
OCSF_VERSION = "1.8.0"
FLAVORS = ("ecs", "ocsf")

PRODUCT = "mtls-audit"
RULESET = "mtls-audit"
ECS_MODULE = "mtls_audit"
ECS_FINDING_DATASET = "mtls_audit.finding"
ECS_SCAN_DATASET = "mtls_audit.scan"
ECS_FINDING_CATEGORY = ("configuration", "network")
ECS_SCAN_CATEGORY = ("configuration",)
OCSF_STANDARD = "mtls-audit"
OCSF_RESOURCE_TYPE = "network_endpoint"


class SeverityMapping(NamedTuple):
    ecs_severity: int  # ECS event.severity (long)
    ocsf_severity_id: int  # OCSF severity_id
    ocsf_severity: str  # OCSF severity (the caption of severity_id)


class StatusMapping(NamedTuple):
    ecs_outcome: str  # ECS event.outcome
    ocsf_status_id: int  # OCSF compliance.status_id
    ocsf_status: str  # OCSF compliance.status


SEVERITY_MAP: dict[str, SeverityMapping] = {
    "info": SeverityMapping(1, 1, "Informational"),
    "low": SeverityMapping(2, 2, "Low"),
    "medium": SeverityMapping(3, 3, "Medium"),
    "high": SeverityMapping(4, 4, "High"),
    "critical": SeverityMapping(5, 5, "Critical"),
}

STATUS_MAP: dict[str, StatusMapping] = {
    "pass": StatusMapping("success", 1, "Pass"),
    "warn": StatusMapping("failure", 2, "Warning"),
    "fail": StatusMapping("failure", 3, "Fail"),
    "error": StatusMapping("unknown", 0, "Unknown"),
    "skip": StatusMapping("unknown", 99, "Skipped"),
}

# OCSF finding workflow: baseline -> (activity_id, activity_name).
OCSF_BASELINE_ACTIVITY: dict[str | None, tuple[int, str]] = {
    None: (1, "Create"),
    "new": (1, "Create"),
    "known": (2, "Update"),
    "resolved": (3, "Close"),
}
OCSF_FINDING_STATUS_NEW = (1, "New")
OCSF_FINDING_STATUS_SUPPRESSED = (3, "Suppressed")
OCSF_FINDING_STATUS_RESOLVED = (4, "Resolved")

# OCSF base-event status for the scan summary, from the ECS outcome of the overall status.
OCSF_EVENT_STATUS: dict[str, tuple[int, str]] = {
    "success": (1, "Success"),
    "failure": (2, "Failure"),
    "unknown": (0, "Unknown"),
}

OCSF_COMPLIANCE_FINDING = {
    "category_uid": 2,
    "category_name": "Findings",
    "class_uid": 2003,
    "class_name": "Compliance Finding",
}
OCSF_SCAN_ACTIVITY = {
    "category_uid": 6,
    "category_name": "Application Activity",
    "class_uid": 6007,
    "class_name": "Scan Activity",
}
OCSF_SCAN_COMPLETED = (2, "Completed")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_RANK = {"skip": 0, "pass": 1, "warn": 2, "error": 3, "fail": 4}  # = checks.base.Status.rank
_NOT_PASSING = frozenset({"fail", "warn", "error"})
_TLS_VERSION_ORDER = {"TLSv1": 0, "TLSv1.1": 1, "TLSv1.2": 2, "TLSv1.3": 3}
_TLS_VERSION = re.compile(r"TLSv(\d)(?:\.(\d))?")
_SAN_PREFIXES = ("DNS:", "IP:", "URI:")
# Characters json.dumps(ensure_ascii=False) leaves raw that still break a line for some
# readers (NEL, LINE/PARAGRAPH SEPARATOR), and lone surrogates UTF-8 cannot encode.
_UNSAFE_IN_LINE = re.compile("[\u0085\u2028\u2029\ud800-\udfff]")
_DNS_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_*](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?\Z")


def mapping_table_markdown() -> str:
    """The severity and status mapping as Markdown tables (for the README)."""
    lines = [
        "| finding `status` | ECS `event.outcome` | OCSF `compliance.status_id` | OCSF `compliance.status` |",
        "|---|---|---|---|",
    ]
    for status, mapping in STATUS_MAP.items():
        lines.append(f"| `{status}` | `{mapping.ecs_outcome}` | `{mapping.ocsf_status_id}` | {mapping.ocsf_status} |")
    lines += [
        "",
        "| finding `severity` | ECS `event.severity` | OCSF `severity_id` | OCSF `severity` |",
        "|---|---|---|---|",
    ]
    for severity, mapping in SEVERITY_MAP.items():
        lines.append(
            f"| `{severity}` | `{mapping.ecs_severity}` | `{mapping.ocsf_severity_id}` | {mapping.ocsf_severity} |"
        )
    return "\n".join(lines) + "\n"


def finding_uid(target_name: str, check_id: str) -> str:
    """A finding's identity across scans: the same target and check give the same uid."""
    material = json.dumps([target_name, check_id], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def dumps_line(event: dict[str, Any], ensure_ascii: bool = False) -> str:
    """One event as one line of JSON (no trailing newline); see the module docstring."""
    text = json.dumps(event, ensure_ascii=ensure_ascii, separators=(",", ":"), allow_nan=False)
    return _UNSAFE_IN_LINE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class _CheckInfo(NamedTuple):
    title: str
    description: str | None
    category: str


class SiemWriter:
    """Streams SIEM events: ``start()``, ``add(target)`` per target, ``finish(scan, summary)``.

    ``destination`` is a path (opened for appending, created with its directory) or an
    open text stream (``sys.stdout`` for ``-``; left open). ``flavor`` is ``"ecs"`` or
    ``"ocsf"``. ``checks`` (the registered ``Check`` objects, for rule names and
    descriptions) defaults to the registry; ``clock`` (for ``event.created``) to UTC now;
    ``tool_version`` to the installed mtls-audit version.
    """

    def __init__(
        self,
        destination: Path | str | IO[str],
        flavor: str,
        *,
        checks: Iterable[Any] | None = None,
        clock: Callable[[], datetime] | None = None,
        tool_version: str | None = None,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"unknown SIEM flavor {flavor!r} (expected one of: {', '.join(FLAVORS)})")
        self.flavor = flavor
        if isinstance(destination, (str, os.PathLike)):
            self.path: Path | None = Path(destination)
            self._stream: IO[str] | None = None
        else:
            self.path = None
            self._stream = destination
        self._file: IO[str] | None = None
        self._done = False
        self._checks = None if checks is None else {check.id: check for check in checks}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tool_version = tool_version
        self._worst_severity: str | None = None
        self.events_written = 0

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        if self._file is not None or self._done:
            raise RuntimeError("SiemWriter.start() called twice")
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        else:
            assert self._stream is not None
            self._file = self._stream

    def add(self, target: dict[str, Any]) -> None:
        """Write one event per finding of ``target`` (``TargetResult.to_dict()``), now."""
        file = self._require_open()
        context = _TargetContext(target)
        lines = []
        for finding in target.get("findings") or []:
            if not isinstance(finding, dict):
                continue
            self._note_severity(finding)
            if self.flavor == "ecs":
                event = self._ecs_finding(context, finding)
            else:
                event = self._ocsf_finding(context, finding)
            lines.append(self._line(event, file))
        if lines:
            file.write("".join(lines))
            file.flush()
            self.events_written += len(lines)

    def finish(self, scan: dict[str, Any], summary: dict[str, Any]) -> Path | None:
        """Write the scan-summary event and close the file (a passed-in stream stays open)."""
        file = self._require_open()
        event = self._ecs_summary(scan, summary) if self.flavor == "ecs" else self._ocsf_summary(scan, summary)
        try:
            file.write(self._line(event, file))
            file.flush()
            self.events_written += 1
            if self.path is not None:
                os.fsync(file.fileno())
        finally:
            self.close()
        return self.path

    def close(self) -> None:
        """Stop writing (no summary line); what was written stays, it is real."""
        if self._file is not None:
            try:
                if self.path is not None:
                    self._file.close()
                else:
                    self._file.flush()
            finally:
                self._file = None
        self._done = True

    abort = close

    def __enter__(self) -> SiemWriter:
        if self._file is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _require_open(self) -> IO[str]:
        if self._file is None:
            state = "finished or closed" if self._done else "not started"
            raise RuntimeError(f"SiemWriter is {state}")
        return self._file

    @staticmethod
    def _line(event: dict[str, Any], file: IO[str]) -> str:
        line = dumps_line(event) + "\n"
        encoding = getattr(file, "encoding", None)
        if encoding and encoding.lower().replace("-", "").replace("_", "") != "utf8":
            try:
                line.encode(encoding)
            except UnicodeEncodeError:  # e.g. stdout in an ASCII locale: same JSON, escaped
                line = dumps_line(event, ensure_ascii=True) + "\n"
            except LookupError:
                pass
        return line

    # -- shared ------------------------------------------------------------------

    @property
    def tool_version(self) -> str:
        if self._tool_version is None:
            from scanner import __version__

            self._tool_version = __version__
        return self._tool_version

    def _check(self, check_id: str) -> _CheckInfo:
        if self._checks is None:
            self._checks = _registered_checks()
        check = self._checks.get(check_id)
        if check is None:
            return _CheckInfo(check_id, None, "tls-configuration")
        category = "client-authentication" if getattr(check, "mtls", False) else "tls-configuration"
        return _CheckInfo(check.title, check.description, category)

    def _note_severity(self, finding: dict[str, Any]) -> None:
        severity = finding.get("severity")
        if finding.get("status") in _NOT_PASSING and severity in SEVERITY_MAP:
            order = list(SEVERITY_MAP)
            if self._worst_severity is None or order.index(severity) > order.index(self._worst_severity):
                self._worst_severity = severity

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo else now.replace(tzinfo=UTC)

    # -- ECS ---------------------------------------------------------------------

    def _ecs_finding(self, context: _TargetContext, finding: dict[str, Any]) -> dict[str, Any]:
        status, severity = _status_mapping(finding), _severity_mapping(finding)
        check_id = str(finding.get("check", ""))
        check = self._check(check_id)
        created = _iso(self._now())
        event: dict[str, Any] = {
            "@timestamp": context.timestamp or created,
            "ecs": {"version": ECS_VERSION},
            "event": {
                "kind": "state",
                "category": list(ECS_FINDING_CATEGORY),
                "type": ["info"],
                "outcome": status.ecs_outcome,
                "module": ECS_MODULE,
                "dataset": ECS_FINDING_DATASET,
                "severity": severity.ecs_severity,
                "created": created,
            },
            "message": _text(finding.get("summary")),
            "rule": _drop_none(
                {
                    "id": check_id,
                    "name": check.title,
                    "description": check.description,
                    "category": check.category,
                    "ruleset": RULESET,
                }
            ),
            "destination": context.ecs_destination(),
        }
        tls = context.ecs_tls()
        if tls:
            event["tls"] = tls
        event["observer"] = self._ecs_observer()
        related = context.ecs_related()
        if related:
            event["related"] = related
        if context.tags:
            event["tags"] = context.tags
        event["mtls"] = _mtls_extras(context, finding) | {"remediation": _text(finding.get("remediation"))}
        return event

    def _ecs_summary(self, scan: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        overall = _overall_status(summary)
        status = STATUS_MAP[overall]
        severity = SEVERITY_MAP[self._worst_severity or "info"]
        created = _iso(self._now())
        started, finished = _parse_time(scan.get("started")), _parse_time(scan.get("finished"))
        event_fields: dict[str, Any] = {
            "kind": "event",
            "category": list(ECS_SCAN_CATEGORY),
            "type": ["info"],
            "outcome": status.ecs_outcome,
            "module": ECS_MODULE,
            "dataset": ECS_SCAN_DATASET,
            "severity": severity.ecs_severity,
            "created": created,
        }
        if started:
            event_fields["start"] = _iso(started)
        if finished:
            event_fields["end"] = _iso(finished)
        if started and finished:
            event_fields["duration"] = max(0, round((finished - started).total_seconds() * 1_000_000_000))
        return {
            "@timestamp": _iso(finished) if finished else created,
            "ecs": {"version": ECS_VERSION},
            "event": event_fields,
            "message": _summary_message(summary),
            "observer": self._ecs_observer(),
            "mtls": {"status": overall, "scan": _scan_extras(scan), "summary": _summary_extras(summary)},
        }

    def _ecs_observer(self) -> dict[str, Any]:
        return {"vendor": PRODUCT, "product": PRODUCT, "version": self.tool_version, "type": "scanner"}

    # -- OCSF --------------------------------------------------------------------

    def _ocsf_metadata(self) -> dict[str, Any]:
        return {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": self.tool_version},
        }

    def _ocsf_finding(self, context: _TargetContext, finding: dict[str, Any]) -> dict[str, Any]:
        status, severity = _status_mapping(finding), _severity_mapping(finding)
        check_id = str(finding.get("check", ""))
        check = self._check(check_id)
        baseline = finding.get("baseline")
        activity_id, activity_name = OCSF_BASELINE_ACTIVITY.get(baseline, OCSF_BASELINE_ACTIVITY[None])
        if baseline == "resolved":
            status_id, status_name = OCSF_FINDING_STATUS_RESOLVED
        elif finding.get("waived"):
            status_id, status_name = OCSF_FINDING_STATUS_SUPPRESSED
        else:
            status_id, status_name = OCSF_FINDING_STATUS_NEW
        time_ms = context.time_ms if context.time_ms is not None else _epoch_ms(self._now())
        event: dict[str, Any] = {
            "activity_id": activity_id,
            "activity_name": activity_name,
            **OCSF_COMPLIANCE_FINDING,
            "type_uid": OCSF_COMPLIANCE_FINDING["class_uid"] * 100 + activity_id,
            "type_name": f"{OCSF_COMPLIANCE_FINDING['class_name']}: {activity_name}",
            "severity_id": severity.ocsf_severity_id,
            "severity": severity.ocsf_severity,
            "status_id": status_id,
            "status": status_name,
            "time": time_ms,
            "timezone_offset": context.timezone_offset,
            "message": _text(finding.get("summary")),
            "metadata": self._ocsf_metadata(),
            "finding_info": _drop_none(
                {
                    "uid": finding_uid(context.name, check_id),
                    "title": check.title,
                    "desc": _text(finding.get("summary")),
                    "types": ["mTLS policy"],
                    "analytic": _drop_none(
                        {"uid": check_id, "name": check.title, "desc": check.description, "type_id": 1, "type": "Rule"}
                    ),
                    "created_time": time_ms,
                }
            ),
            "compliance": _drop_none(
                {
                    "control": check_id,
                    "desc": check.description,
                    "category": check.category,
                    "standards": [OCSF_STANDARD],
                    "status_id": status.ocsf_status_id,
                    "status": status.ocsf_status,
                }
            ),
            "resources": [context.ocsf_resource()],
        }
        if event["timezone_offset"] is None:
            del event["timezone_offset"]
        remediation = _text(finding.get("remediation"))
        if remediation:
            event["remediation"] = {"desc": remediation}
        event["unmapped"] = {"mtls": _mtls_extras(context, finding)}
        return event

    def _ocsf_summary(self, scan: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
        overall = _overall_status(summary)
        status_id, status_name = OCSF_EVENT_STATUS[STATUS_MAP[overall].ecs_outcome]
        severity = SEVERITY_MAP[self._worst_severity or "info"]
        activity_id, activity_name = OCSF_SCAN_COMPLETED
        started, finished = _parse_time(scan.get("started")), _parse_time(scan.get("finished"))
        end = finished or self._now()
        targets = _count(summary.get("targets"))
        by_finding = summary.get("findings_by_status") or {}
        event: dict[str, Any] = {
            "activity_id": activity_id,
            "activity_name": activity_name,
            **OCSF_SCAN_ACTIVITY,
            "type_uid": OCSF_SCAN_ACTIVITY["class_uid"] * 100 + activity_id,
            "type_name": f"{OCSF_SCAN_ACTIVITY['class_name']}: {activity_name}",
            "severity_id": severity.ocsf_severity_id,
            "severity": severity.ocsf_severity,
            "status_id": status_id,
            "status": status_name,
            "time": _epoch_ms(end),
            "message": _summary_message(summary),
            "metadata": self._ocsf_metadata(),
            "scan": {"uid": _scan_uid(scan), "name": PRODUCT, "type_id": 99, "type": "mTLS policy audit"},
            "total": targets,
            "num_network_items": targets,
            "num_detections": _count(by_finding.get("fail")) + _count(by_finding.get("warn")),
            "end_time": _epoch_ms(end),
        }
        if started:
            event["start_time"] = _epoch_ms(started)
            event["duration"] = max(0, event["end_time"] - event["start_time"])
        event["unmapped"] = {
            "mtls": {"status": overall, "scan": _scan_extras(scan), "summary": _summary_extras(summary)}
        }
        return event


# -- per-target facts ------------------------------------------------------------------


class _TargetContext:
    """What every finding event of one target shares, computed once per target."""

    def __init__(self, target: dict[str, Any]) -> None:
        self.target = target
        self.name = _text(target.get("name"))
        self.address = _text(target.get("address"))
        self.server_name = _text(target.get("server_name"))
        self.tags = [str(tag) for tag in target.get("tags") or []]
        self.host, self.port = _split_address(self.address)
        self.ip = _ip_literal(self.host)
        if self.ip is None and _is_dns_name(self.host):
            self.domain: str | None = self.host
        elif _is_dns_name(self.server_name):
            self.domain = self.server_name
        else:
            self.domain = None
        scanned = _parse_time(target.get("scanned_at"))
        self.timestamp = _iso(scanned) if scanned else None
        self.time_ms = _epoch_ms(scanned) if scanned else None
        offset = scanned.utcoffset() if scanned else None
        self.timezone_offset = int(offset.total_seconds() // 60) if offset is not None else None
        certificates = [c for c in target.get("certificates") or [] if isinstance(c, dict)]
        self.leaf = certificates[0] if certificates else None
        probes = [p for p in target.get("probes") or [] if isinstance(p, dict)]
        self.has_probes = bool(probes)
        self.probe = _reference_probe(probes)

    def ecs_destination(self) -> dict[str, Any]:
        destination: dict[str, Any] = {"address": self.host or self.address}
        if self.ip:
            destination["ip"] = self.ip
        if self.port is not None:
            destination["port"] = self.port
        if self.domain:
            destination["domain"] = self.domain
        return destination

    def sni(self) -> str | None:
        if self.probe and self.probe.get("sni"):
            return _text(self.probe["sni"])
        return self.server_name if _is_dns_name(self.server_name) else None

    def ecs_tls(self) -> dict[str, Any]:
        tls: dict[str, Any] = {}
        if self.probe is not None:
            version = _ecs_tls_version(self.probe.get("negotiated_version"))
            if version:
                tls["version"] = version
                tls["version_protocol"] = "tls"
            if self.probe.get("cipher"):
                tls["cipher"] = _text(self.probe["cipher"])
        if self.has_probes:
            tls["established"] = self.probe is not None
        sni = self.sni()
        if sni:
            tls["client"] = {"server_name": sni}
        if self.leaf is not None:
            tls["server"] = _ecs_server_certificate(self.leaf)
        return tls

    def ecs_related(self) -> dict[str, Any]:
        related: dict[str, Any] = {}
        if self.ip:
            related["ip"] = [self.ip]
        hosts = [h for h in dict.fromkeys([self.domain, self.sni()]) if h]
        if hosts:
            related["hosts"] = hosts
        if self.leaf is not None and self.leaf.get("sha256"):
            related["hash"] = [_text(self.leaf["sha256"]).upper()]
        return related

    def ocsf_resource(self) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "type": OCSF_RESOURCE_TYPE,
            "uid": self.address,
            "name": self.name,
            "role_id": 1,
            "role": "Target",
        }
        if self.domain:
            resource["hostname"] = self.domain
        if self.ip:
            resource["ip"] = self.ip
        if self.tags:
            resource["labels"] = self.tags
        data: dict[str, Any] = {"server_name": self.server_name}
        if self.port is not None:
            data["port"] = self.port
        data["accepted_versions"] = [_text(v) for v in self.target.get("accepted_versions") or []]
        if self.has_probes:
            tls: dict[str, Any] = {"established": self.probe is not None}
            if self.probe is not None:
                tls |= _drop_none(
                    {
                        "probe": self.probe.get("probe"),
                        "version": self.probe.get("negotiated_version"),
                        "cipher": self.probe.get("cipher"),
                    }
                )
            sni = self.sni()
            if sni:
                tls["sni"] = sni
            data["tls"] = tls
        if self.leaf is not None:
            data["certificate"] = {key: value for key, value in self.leaf.items() if key != "pem"}
        resource["data"] = data
        return resource


def _reference_probe(probes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The handshake the ``tls.*`` fields describe: our own identity's completed handshake
    on the highest version, else any completed handshake (no identity configured)."""
    completed = [p for p in probes if p.get("handshake_completed") and p.get("negotiated_version")]
    if not completed:
        return None

    def key(probe: dict[str, Any]) -> tuple[int, int]:
        return (probe.get("presented") == "valid", _TLS_VERSION_ORDER.get(probe.get("negotiated_version"), -1))

    return max(completed, key=key)


def _ecs_tls_version(negotiated: Any) -> str | None:
    """ "TLSv1.3" -> "1.3", "TLSv1" -> "1.0" (ECS tls.version is the numeric part)."""
    match = _TLS_VERSION.fullmatch(negotiated) if isinstance(negotiated, str) else None
    if not match:
        return None
    return f"{match.group(1)}.{match.group(2) or '0'}"


def _ecs_server_certificate(leaf: dict[str, Any]) -> dict[str, Any]:
    x509: dict[str, Any] = {}
    if leaf.get("subject") is not None:
        x509["subject"] = {"distinguished_name": _text(leaf["subject"])}
    if leaf.get("issuer") is not None:
        x509["issuer"] = {"distinguished_name": _text(leaf["issuer"])}
    names = [_strip_san_prefix(_text(name)) for name in leaf.get("subject_alternative_names") or []]
    if names:
        x509["alternative_names"] = names
    for field in ("not_before", "not_after"):
        moment = _parse_time(leaf.get(field))
        if moment:
            x509[field] = _iso(moment)
    if leaf.get("serial"):
        # ECS: "if this value is alphanumeric, it should be formatted without colons and uppercase".
        x509["serial_number"] = _text(leaf["serial"]).upper()
    server: dict[str, Any] = {}
    if leaf.get("sha256"):
        server["hash"] = {"sha256": _text(leaf["sha256"]).upper()}  # ECS hashes are uppercase hex
    if x509:
        server["x509"] = x509
    return server


def _strip_san_prefix(name: str) -> str:
    for prefix in _SAN_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


# -- our own fields ---------------------------------------------------------------------


def _mtls_extras(context: _TargetContext, finding: dict[str, Any]) -> dict[str, Any]:
    """``mtls`` (ECS) / ``unmapped.mtls`` (OCSF): the same object in both flavors."""
    entries = _evidence_entries(finding.get("evidence"))
    extras: dict[str, Any] = {
        "status": _text(finding.get("status")),
        "severity": _text(finding.get("severity")),
        "finding_uid": finding_uid(context.name, str(finding.get("check", ""))),
        "target": _drop_none(
            {
                "name": context.name,
                "address": context.address,
                "server_name": context.server_name,
                "status": context.target.get("status"),
                "error": context.target.get("error"),
            }
        ),
        "accepted_versions": [_text(v) for v in context.target.get("accepted_versions") or []],
        "client_auth": [
            {
                "version": entry.get("version"),
                "classification": entry.get("classification"),
                "blocked_at": entry.get("blocked_at"),
                "certificate_request_seen": bool(entry.get("certificate_request_seen")),
                "detail": entry.get("detail"),
            }
            for entry in context.target.get("client_auth") or []
            if isinstance(entry, dict)
        ],
    }
    probes = [_text(entry["probe"]) for entry in entries if entry.get("probe")]
    if probes:
        extras["probe"] = probes
    layers = list(dict.fromkeys(_text(e["blocked_at"]) for e in entries if e.get("blocked_at")))
    if layers:
        extras["blocking_layer"] = layers
    alerts: list[dict[str, Any]] = []
    for entry in entries:
        alert = entry.get("alert")
        if isinstance(alert, dict) and isinstance(alert.get("code"), int):
            item = {"code": alert["code"], "name": _text(alert.get("name"))}
            if item not in alerts:
                alerts.append(item)
    if alerts:
        extras["alert"] = alerts
    extras["waived"] = bool(finding.get("waived"))
    waiver = finding.get("waiver")
    if isinstance(waiver, dict):
        extras["waiver"] = _drop_none(
            {
                "reason": waiver.get("reason"),
                "owner": waiver.get("owner"),
                "expires": _waiver_expiry(waiver.get("expires")),
            }
        )
    if finding.get("baseline") is not None:
        extras["baseline"] = _text(finding["baseline"])
    evidence = finding.get("evidence")
    if evidence:
        extras["evidence"] = json.dumps(evidence, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return extras


def _evidence_entries(evidence: Any) -> list[dict[str, Any]]:
    """The per-probe entries a finding's evidence carries (``per_version`` / ``probes``)."""
    if not isinstance(evidence, dict):
        return []
    entries: list[dict[str, Any]] = []
    for key in ("per_version", "probes"):
        for entry in evidence.get(key) or []:
            if isinstance(entry, dict) and "probe" in entry:
                entries.append(entry)
    return entries


def _waiver_expiry(value: Any) -> str | None:
    """A waiver's expiry as an ECS date: a date-time, or a plain date (midnight UTC)."""
    moment = _parse_time(value)
    if moment is None and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value + "T00:00:00+00:00")
        except ValueError:
            moment = None
    return _iso(moment) if moment else None


def _scan_extras(scan: dict[str, Any]) -> dict[str, Any]:
    started, finished = _parse_time(scan.get("started")), _parse_time(scan.get("finished"))
    extras = {
        "uid": _scan_uid(scan),
        "started": _iso(started) if started else None,
        "finished": _iso(finished) if finished else None,
        "tool": scan.get("tool"),
        "tool_version": scan.get("tool_version"),
        "inventory": scan.get("inventory"),
    }
    if scan.get("options") is not None:
        extras["options"] = json.dumps(scan["options"], ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return _drop_none(extras)


def _summary_extras(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "targets": _count(summary.get("targets")),
        "targets_by_status": _counts(summary.get("targets_by_status")),
        "findings_by_status": _counts(summary.get("findings_by_status")),
    }


def _summary_message(summary: dict[str, Any]) -> str:
    def breakdown(counts: dict[str, int]) -> str:
        parts = [f"{counts[s]} {s}" for s in ("fail", "error", "warn", "pass", "skip") if counts.get(s)]
        return f" ({', '.join(parts)})" if parts else ""

    by_target = _counts(summary.get("targets_by_status"))
    by_finding = _counts(summary.get("findings_by_status"))
    return (
        f"mtls-audit scan finished: {_count(summary.get('targets'))} targets{breakdown(by_target)}, "
        f"{sum(by_finding.values())} findings{breakdown(by_finding)}"
    )


def _overall_status(summary: dict[str, Any]) -> str:
    present = [s for s, n in _counts(summary.get("targets_by_status")).items() if n and s in _STATUS_RANK]
    return max(present, key=_STATUS_RANK.__getitem__, default="skip")


def _scan_uid(scan: dict[str, Any]) -> str:
    material = json.dumps([scan.get("started"), scan.get("inventory")], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# -- small helpers ----------------------------------------------------------------------


@functools.cache
def _registry_checks() -> tuple[Any, ...]:
    from checks.registry import RegistryError, load_checks

    try:
        return load_checks()
    except RegistryError:
        return ()


def _registered_checks() -> dict[str, Any]:
    return {check.id: check for check in _registry_checks()}


def _status_mapping(finding: dict[str, Any]) -> StatusMapping:
    # The schema only allows the five statuses; anything else is reported as undecided.
    return STATUS_MAP.get(finding.get("status"), STATUS_MAP["error"])


def _severity_mapping(finding: dict[str, Any]) -> SeverityMapping:
    return SEVERITY_MAP.get(finding.get("severity"), SEVERITY_MAP["info"])


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(key): _count(count) for key, count in value.items()}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    """UTC, millisecond precision, "Z" suffix: what Elasticsearch's date type expects."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, truncated like ``_iso`` (exact integer arithmetic)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _split_address(address: str) -> tuple[str, int | None]:
    """ "host:port", "1.2.3.4:port" or "[v6]:port" -> (host, port)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, _, port_text = address.partition(":")
    else:
        host, port_text = address, ""
    port = int(port_text) if port_text.isdigit() and 0 <= int(port_text) <= 65535 else None
    return host, port


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _is_dns_name(name: str) -> bool:
    return bool(name) and _ip_literal(name) is None and _DNS_NAME.match(name) is not None
