"""The report document: what a scan concluded, typed from end to end.

The engine makes ``TargetReport``s; triage annotates them; every writer reads them;
``ReportDocument.from_dict`` reads a saved JSON report back into the same types, so
`report`, `diff`, the baseline and the waivers never juggle raw dicts. ``to_dict``
gives the JSON shape of ``reports/schema/report.schema.json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mtls_audit.scanner.model.compact import (
    TextTable,
    certificate_references,
    certificate_values,
    command_parts,
    joined,
    like_decode,
    like_encode,
    lists_like,
    lists_whole,
    same,
    text_of,
)
from mtls_audit.scanner.model.finding import Finding, WaiverNote
from mtls_audit.scanner.model.observations import ProbeObservation
from mtls_audit.scanner.model.status import Severity, Status, worst_status

SCHEMA_VERSION = "1.3"
# 1.0 reports (before finding commands, probe attempts and the check catalog), 1.1
# reports (before the identity matrix and access-rule probes) and 1.2 reports (before
# probes like others, command parts, certificate positions and the report's texts)
# still load, so last night's report keeps working as a baseline.
READABLE_SCHEMA_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
TOOL = "mtls-audit"


@dataclass(frozen=True, slots=True)
class CheckInfo:
    """What reports say about a check: enough to name it, rank it and explain it."""

    id: str
    title: str
    severity: Severity
    description: str
    mtls: bool = False  # a client-authentication check (else TLS configuration)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "description": self.description,
            "mtls": self.mtls,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckInfo:
        return cls(data["id"], data["title"], Severity(data["severity"]), data["description"], data.get("mtls", False))


@dataclass(frozen=True, slots=True)
class ClientAuthEntry:
    """Client authentication as observed on one TLS version."""

    version: str
    classification: str  # required | optional | not-requested | unknown
    blocked_at: str | None
    certificate_request_seen: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "classification": self.classification,
            "blocked_at": self.blocked_at,
            "certificate_request_seen": self.certificate_request_seen,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClientAuthEntry:
        return cls(
            data["version"],
            data["classification"],
            data.get("blocked_at"),
            bool(data.get("certificate_request_seen", False)),
            data.get("detail", ""),
        )


@dataclass(frozen=True, slots=True)
class MatrixCell:
    """One client on one TLS version: what the server did, and whether the policy
    wanted that."""

    version: str
    observed: str  # allowed | blocked | unknown | error | not-probed
    where: str  # "tls-handshake", "http 403", "tls"...: how it was decided
    as_expected: bool | None  # None: the row has no expectation, or nothing was decided

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "observed": self.observed,
            "where": self.where,
            "as_expected": self.as_expected,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatrixCell:
        return cls(data["version"], data["observed"], data["where"], data["as_expected"])


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One client the scanner presented: our identity, an impostor, an access rule's
    identity, or an issuer-minted copy; across every TLS version the server accepted."""

    client: str  # "lab-client", "no certificate", "web POST /transfer", "expired"
    kind: str  # identity | impostor | rule | minted
    expect: str | None  # allow | deny; None where the policy says nothing
    cells: tuple[MatrixCell, ...]
    detail: str = ""  # a minted copy's defect, a rule's request
    client_certificate_sha256: str | None = None

    @property
    def as_expected(self) -> bool | None:
        """False if any version went against the expectation; None if none decided."""
        decided = [cell.as_expected for cell in self.cells if cell.as_expected is not None]
        if not decided:
            return None
        return all(decided)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"client": self.client, "kind": self.kind, "expect": self.expect}
        if self.detail:
            data["detail"] = self.detail
        if self.client_certificate_sha256 is not None:
            data["client_certificate_sha256"] = self.client_certificate_sha256
        data["cells"] = [cell.to_dict() for cell in self.cells]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatrixRow:
        return cls(
            data["client"],
            data["kind"],
            data["expect"],
            tuple(MatrixCell.from_dict(c) for c in data["cells"]),
            data.get("detail", ""),
            data.get("client_certificate_sha256"),
        )


@dataclass(frozen=True, slots=True)
class CertificateSummary:
    """Public facts about a certificate the server sent (attacker-controlled text)."""

    subject: str
    issuer: str
    serial: str  # lowercase hex
    not_before: datetime
    not_after: datetime
    subject_alternative_names: tuple[str, ...]
    sha256: str
    pem: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "subject_alternative_names": list(self.subject_alternative_names),
            "sha256": self.sha256,
            "pem": self.pem,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CertificateSummary:
        return cls(
            data["subject"],
            data["issuer"],
            data["serial"],
            datetime.fromisoformat(data["not_before"]),
            datetime.fromisoformat(data["not_after"]),
            tuple(data["subject_alternative_names"]),
            data["sha256"],
            data["pem"],
        )


@dataclass(frozen=True, slots=True)
class TargetReport:
    name: str
    address: str
    server_name: str
    tags: tuple[str, ...]
    status: Status  # worst finding; error when the target could not be scanned
    error: str | None  # why the target could not be scanned, if it could not
    scanned_at: datetime  # when the last probe of this target finished
    accepted_versions: tuple[str, ...]
    client_auth: tuple[ClientAuthEntry, ...]
    certificates: tuple[CertificateSummary, ...]
    findings: tuple[Finding, ...]
    probes: tuple[ProbeObservation, ...]
    identity_matrix: tuple[MatrixRow, ...] = ()
    index: int = 0  # position in the inventory: merged shards keep inventory order
    inventory_line: int | None = None  # where the inventory file declares the target

    def with_findings(self, findings: Iterable[Finding]) -> TargetReport:
        return replace(self, findings=tuple(findings))

    def finding(self, check: str) -> Finding | None:
        return next((f for f in self.findings if f.check == check), None)

    def to_dict(
        self,
        *,
        texts: TextTable | None = None,
        severities: Mapping[str, Severity] | None = None,
        compact: bool = True,
    ) -> dict[str, Any]:
        """The target; each fact said once (``scanner.model.compact``):

        - a probe leaves out its ``address``, ``sni`` and ``peer_chain_sha256`` when
          they are the target's ``address``, ``server_name`` and certificates (a probe
          that got no chain from a target that has one says ``[]``), or it is ``like``
          an earlier probe and says only how it differs from it;
        - an identity-matrix row may be ``like`` an earlier row;
        - finding evidence names probes by id instead of repeating their facts
          (``Finding.to_dict``), certificates of the chain by their position, and
          an object in a list of objects may be ``like`` an earlier one;
        - finding commands are ``{label: command}``, the runs of arguments several
          commands share written once in ``command_parts``;
        - with ``texts`` (the report's table), a summary or remediation met before
          is its index there; with ``severities`` (the check catalog's), a finding at
          its check's severity leaves it out.

        ``compact=False`` skips what costs time to find (probes and rows like others,
        command parts, certificate positions, evidence lists like others), for a
        round trip through a spill file. The certificates are spelled out here; the
        JSON report keeps them once per report (``ReportDocument.to_dict``)."""
        chain = [certificate.sha256 for certificate in self.certificates]
        shared = {"address": self.address, "sni": self.server_name, "peer_chain_sha256": chain}

        def alone(entry: dict[str, Any]) -> dict[str, Any]:
            return {key: value for key, value in entry.items() if not (key in shared and same(value, shared[key]))}

        probes = [_probe_facts(probe) for probe in self.probes]
        matrix = [row.to_dict() for row in self.identity_matrix]
        every_command = [command.command for finding in self.findings for command in finding.commands]
        if compact:
            probes = like_encode(probes, alone, "probe")
            matrix = like_encode(matrix, dict, "client")
            parts, commands = command_parts(every_command)
        else:
            probes = [alone(probe) for probe in probes]
            parts, commands = [], {command: command for command in every_command}
        by_id = {probe.spec.id: probe for probe in self.probes}
        facts = [certificate.to_dict() for certificate in self.certificates] if compact else []
        findings = []
        for finding in self.findings:
            entry = finding.to_dict(by_id)
            if finding.commands:
                labels = [command.label for command in finding.commands]
                written = [commands[command.command] for command in finding.commands]
                if len(set(labels)) == len(labels):
                    entry["commands"] = dict(zip(labels, written, strict=True))
                else:
                    entry["commands"] = [{"label": a, "command": b} for a, b in zip(labels, written, strict=True)]
            if entry.get("evidence") and facts:
                entry["evidence"] = _if_exact(
                    entry["evidence"],
                    lambda value: certificate_references(value, facts),
                    lambda value: certificate_values(value, facts),
                )
            if entry.get("evidence") and compact:
                entry["evidence"] = _if_exact(entry["evidence"], lists_like, lists_whole)
            if texts is not None:
                entry["summary"] = texts.name(entry["summary"])
                if "remediation" in entry:
                    entry["remediation"] = texts.name(entry["remediation"])
            if severities is not None and severities.get(finding.check) is finding.severity:
                del entry["severity"]
            findings.append(entry)
        data: dict[str, Any] = {
            "name": self.name,
            "address": self.address,
            "server_name": self.server_name,
            "tags": list(self.tags),
            "status": self.status.value,
            "error": self.error,
            "scanned_at": self.scanned_at.isoformat(),
            "accepted_versions": list(self.accepted_versions),
            "client_auth": [entry.to_dict() for entry in self.client_auth],
            "certificates": [certificate.to_dict() for certificate in self.certificates],
        }
        if parts:
            data["command_parts"] = parts
        data |= {
            "findings": findings,
            "probes": probes,
            "identity_matrix": matrix,
            "index": self.index,
            "inventory_line": self.inventory_line,
        }
        return data

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        certificates: Mapping[str, CertificateSummary] | None = None,
        *,
        texts: Sequence[str] = (),
        severities: Mapping[str, Severity] | None = None,
    ) -> TargetReport:
        """From a saved target; ``certificates`` is the report's table (by SHA-256) for
        a target that names its certificates by fingerprint (1.2 on), ``texts`` the
        report's texts and ``severities`` its check catalog's (1.3). Raises ValueError
        for a reference that names nothing (a probe, part, text or certificate)."""
        chain = tuple(
            (certificates or {})[entry] if isinstance(entry, str) else CertificateSummary.from_dict(entry)
            for entry in data.get("certificates") or ()
        )
        # What a probe leaves out because it is the target's (1.0 and 1.1 spell it).
        shared = {
            "address": data["address"],
            "sni": data["server_name"],
            "peer_chain_sha256": [certificate.sha256 for certificate in chain],
        }
        entries = like_decode(data.get("probes") or (), lambda entry: shared | dict(entry), "probe")
        probes = tuple(ProbeObservation.from_dict(entry) for entry in entries)
        by_id = {probe.spec.id: probe for probe in probes}
        facts = [certificate.to_dict() for certificate in chain]
        parts = data.get("command_parts") or ()
        findings = tuple(
            Finding.from_dict(_finding_spelled_out(f, facts, parts, texts, severities), by_id)
            for f in data.get("findings") or ()
        )
        matrix = like_decode(data.get("identity_matrix") or (), dict, "client")
        return cls(
            name=data["name"],
            address=data["address"],
            server_name=data["server_name"],
            tags=tuple(data.get("tags") or ()),
            status=Status(data["status"]),
            error=data.get("error"),
            scanned_at=datetime.fromisoformat(data["scanned_at"]),
            accepted_versions=tuple(data.get("accepted_versions") or ()),
            client_auth=tuple(ClientAuthEntry.from_dict(e) for e in data.get("client_auth") or ()),
            certificates=chain,
            findings=findings,
            probes=probes,
            identity_matrix=tuple(MatrixRow.from_dict(r) for r in matrix),
            index=data.get("index", 0),
            inventory_line=data.get("inventory_line"),
        )


def _probe_facts(probe: ProbeObservation) -> dict[str, Any]:
    """A probe's facts as ``ProbeObservation.to_dict`` gives them, its chain always
    named (``[]``: none), so that a probe like another can say it got no chain."""
    entry = probe.to_dict()
    entry["peer_chain_sha256"] = list(probe.chain_fingerprints)
    return entry


def _if_exact(value: Any, encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> Any:
    """``encode(value)`` where ``decode`` gives ``value`` back exactly, else ``value``."""
    shorter = encode(value)
    if same(shorter, value):
        return value
    try:
        return shorter if same(decode(shorter), value) else value
    except ValueError:
        return value


def _finding_spelled_out(
    data: dict[str, Any],
    certificates: Sequence[dict[str, Any]],
    parts: Sequence[str],
    texts: Sequence[str],
    severities: Mapping[str, Severity] | None,
) -> dict[str, Any]:
    """A saved finding with what ``TargetReport.to_dict`` names by reference put back,
    as ``Finding.from_dict`` reads it (evidence facts of probes are its own business)."""
    data = dict(data)
    data["summary"] = text_of(data["summary"], texts)
    if "remediation" in data:
        data["remediation"] = text_of(data["remediation"], texts)
    if "severity" not in data:
        known = (severities or {}).get(data["check"])
        if known is None:
            raise ValueError(f"a {data['check']} finding has no severity, and the scan's checks do not name it")
        data["severity"] = known.value
    commands = data.get("commands")
    if isinstance(commands, dict):
        data["commands"] = [{"label": label, "command": joined(command, parts)} for label, command in commands.items()]
    elif commands:
        data["commands"] = [{**command, "command": joined(command["command"], parts)} for command in commands]
    if data.get("evidence"):
        data["evidence"] = lists_whole(data["evidence"])
        if certificates:
            data["evidence"] = certificate_values(data["evidence"], certificates)
    return data


@dataclass(frozen=True, slots=True)
class WaiverReport:
    """The waivers file used: every waiver past its date, every one that matched nothing."""

    file: str | None
    expired: tuple[WaiverNote, ...]
    unused: tuple[WaiverNote, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "expired": [w.to_dict() for w in self.expired],
            "unused": [w.to_dict() for w in self.unused],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WaiverReport:
        return cls(
            data.get("file"),
            tuple(WaiverNote.from_dict(w) for w in data.get("expired") or ()),
            tuple(WaiverNote.from_dict(w) for w in data.get("unused") or ()),
        )


@dataclass(frozen=True, slots=True)
class BaselineReport:
    """The earlier report compared against; ``missing_targets`` were in it, not in this scan."""

    file: str
    missing_targets: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "missing_targets": list(self.missing_targets)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineReport:
        return cls(data["file"], tuple(data.get("missing_targets") or ()))


@dataclass(frozen=True, slots=True)
class Shard:
    """Which part of the inventory a sharded scan covered: ``index`` of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def to_dict(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Shard:
        return cls(data["index"], data["count"])


@dataclass(frozen=True, slots=True)
class ScanInfo:
    """The scan itself. Writers get it twice: at the start (``finished`` None, no
    triage yet) and at the end, complete."""

    started: datetime
    finished: datetime | None
    tool_version: str
    inventory: str | None
    options: Mapping[str, Any]
    checks: tuple[CheckInfo, ...] = ()
    waivers: WaiverReport | None = None
    baseline: BaselineReport | None = None
    inventory_sha256: str | None = None  # of the inventory file's bytes: shards must share it
    shard: Shard | None = None  # None: the whole inventory (or shards merged)
    targets_in_inventory: int | None = None

    def check(self, check_id: str) -> CheckInfo | None:
        return next((c for c in self.checks if c.id == check_id), None)

    @property
    def severities(self) -> dict[str, Severity]:
        """Each check's severity by id: what a 1.3 finding at it leaves out."""
        return {check.id: check.severity for check in self.checks}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "tool": TOOL,
            "tool_version": self.tool_version,
            "inventory": self.inventory,
            "options": dict(self.options),
            "checks": [check.to_dict() for check in self.checks],
        }
        if self.waivers is not None:
            data["waivers"] = self.waivers.to_dict()
        if self.baseline is not None:
            data["baseline"] = self.baseline.to_dict()
        if self.inventory_sha256 is not None:
            data["inventory_sha256"] = self.inventory_sha256
        if self.shard is not None:
            data["shard"] = self.shard.to_dict()
        if self.targets_in_inventory is not None:
            data["targets_in_inventory"] = self.targets_in_inventory
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanInfo:
        finished = data.get("finished")
        return cls(
            started=datetime.fromisoformat(data["started"]),
            finished=datetime.fromisoformat(finished) if finished else None,
            tool_version=data["tool_version"],
            inventory=data.get("inventory"),
            options=data.get("options") or {},
            checks=tuple(CheckInfo.from_dict(c) for c in data.get("checks") or ()),
            waivers=WaiverReport.from_dict(data["waivers"]) if data.get("waivers") else None,
            baseline=BaselineReport.from_dict(data["baseline"]) if data.get("baseline") else None,
            inventory_sha256=data.get("inventory_sha256"),
            shard=Shard.from_dict(data["shard"]) if data.get("shard") else None,
            targets_in_inventory=data.get("targets_in_inventory"),
        )


@dataclass(frozen=True, slots=True)
class Summary:
    targets: int
    targets_by_status: Mapping[Status, int]
    findings_by_status: Mapping[Status, int]

    @property
    def overall(self) -> Status:
        """The scan's verdict: its worst target status (skip when there are none)."""
        return worst_status(status for status, count in self.targets_by_status.items() if count)

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": self.targets,
            "targets_by_status": {s.value: n for s, n in self.targets_by_status.items()},
            "findings_by_status": {s.value: n for s, n in self.findings_by_status.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        return cls(
            targets=data["targets"],
            targets_by_status={Status(s): n for s, n in data["targets_by_status"].items()},
            findings_by_status={Status(s): n for s, n in data["findings_by_status"].items()},
        )


class SummaryCounter:
    """Counts targets and findings by status as they stream past."""

    def __init__(self) -> None:
        self.targets = 0
        self._by_target: Counter[Status] = Counter()
        self._by_finding: Counter[Status] = Counter()

    def add(self, target: TargetReport) -> None:
        self.targets += 1
        self._by_target[target.status] += 1
        self._by_finding.update(finding.status for finding in target.findings)

    def summary(self) -> Summary:
        return Summary(self.targets, dict(self._by_target), dict(self._by_finding))


@dataclass(frozen=True, slots=True)
class ReportDocument:
    scan: ScanInfo
    summary: Summary
    targets: tuple[TargetReport, ...]
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's shape (what ``JsonReportWriter`` streams): each target
        names its certificates by SHA-256, and ``certificates`` holds each distinct one
        once, keyed by SHA-256, in the order the targets first name them; ``texts``
        holds the summaries and remediations findings repeat (``TextTable``), and a
        finding at its check's severity in ``scan.checks`` leaves it out."""
        targets = []
        table: dict[str, dict[str, Any]] = {}
        texts = TextTable()
        severities = self.scan.severities
        for target in self.targets:
            entry = target.to_dict(texts=texts, severities=severities)
            entry["certificates"] = [certificate.sha256 for certificate in target.certificates]
            for certificate in target.certificates:
                if certificate.sha256 not in table:
                    table[certificate.sha256] = certificate.to_dict()
                    del table[certificate.sha256]["sha256"]
            targets.append(entry)
        document: dict[str, Any] = {"schema_version": self.schema_version, "targets": targets, "certificates": table}
        if texts.texts:
            document["texts"] = texts.texts
        return document | {"scan": self.scan.to_dict(), "summary": self.summary.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportDocument:
        """From a dict that already passed the JSON schema (``reports.json_report.load_report``):
        1.0 and 1.1 spell out each target's certificates, 1.2 names them in the
        ``certificates`` table (a name not in it raises KeyError), 1.3 adds the
        ``texts`` and leaves severities to the check catalog."""
        table = {
            sha256: CertificateSummary.from_dict({**entry, "sha256": sha256})
            for sha256, entry in (data.get("certificates") or {}).items()
        }
        scan = ScanInfo.from_dict(data["scan"])
        texts = data.get("texts") or ()
        return cls(
            scan=scan,
            summary=Summary.from_dict(data["summary"]),
            targets=tuple(_targets(data["targets"], table, texts, scan.severities)),
            schema_version=data["schema_version"],
        )


def _targets(
    targets: Iterable[dict[str, Any]],
    table: Mapping[str, CertificateSummary],
    texts: Sequence[str],
    severities: Mapping[str, Severity],
) -> Iterable[TargetReport]:
    """The saved targets, typed; a ValueError says which target."""
    for number, target in enumerate(targets):
        try:
            yield TargetReport.from_dict(target, table, texts=texts, severities=severities)
        except ValueError as error:
            raise ValueError(f"at $.targets[{number}]: {error}") from None


@dataclass(frozen=True, slots=True)
class TargetDigest:
    """What the console, progress and exit code keep of a finished target: a scan of
    10,000 targets must not hold 10,000 reports to print its summary."""

    name: str
    address: str
    status: Status
    error: str | None
    findings: tuple[Finding, ...]
    identity_matrix: tuple[MatrixRow, ...] = ()

    @classmethod
    def of(cls, target: TargetReport) -> TargetDigest:
        light = tuple(replace(f, evidence={}, commands=(), remediation="") for f in target.findings)
        return cls(target.name, target.address, target.status, target.error, light, target.identity_matrix)
