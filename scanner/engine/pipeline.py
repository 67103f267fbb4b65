"""One scan from targets to written reports: the pipeline `scan` and `demo` share.

Results stream from the engine to every writer as they arrive; only a small
per-target digest is kept for the console summary and the exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import trio

from mtls_audit.checks.base import Check
from mtls_audit.scanner import __version__
from mtls_audit.scanner.engine.engine import ScanOptions, scan
from mtls_audit.scanner.engine.results import ScanMetadata
from mtls_audit.scanner.model.target import Target
from mtls_audit.scanner.triage.triage import Triage


class ReportWriter(Protocol):
    def start(self) -> None: ...
    def add(self, target: dict[str, Any]) -> None: ...
    def finish(self, scan: dict[str, Any], summary: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class TargetDigest:
    """What the console and the exit code need of a finished target."""

    name: str
    address: str
    status: str
    error: str | None
    findings: dict[str, dict[str, Any]]  # check id -> {"status", "summary", "waived", "baseline"}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> TargetDigest:
        return cls(
            name=document["name"],
            address=document["address"],
            status=document["status"],
            error=document["error"],
            findings={
                f["check"]: {
                    "status": f["status"],
                    "summary": f["summary"],
                    "waived": f.get("waived", False),
                    "baseline": f.get("baseline"),
                }
                for f in document["findings"]
            },
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "status": self.status,
            "error": self.error,
            "findings": self.findings,
        }


@dataclass(frozen=True)
class ScanOutcome:
    digests: list[TargetDigest]
    summary: dict[str, Any]
    scan: dict[str, Any]


def _count(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


async def run_scan(
    targets: Sequence[Target],
    checks: Sequence[Check],
    options: ScanOptions,
    writers: Sequence[ReportWriter],
    inventory: str | None,
    option_record: dict[str, Any],
    on_result: Callable[[TargetDigest], None] = lambda digest: None,
    triage: Triage | None = None,
) -> ScanOutcome:
    started = datetime.now(UTC)
    started_writers: list[ReportWriter] = []
    try:
        for writer in writers:
            writer.start()
            started_writers.append(writer)
        digests, by_target, by_finding = await _stream_results(
            targets, checks, options, writers, started, on_result, triage
        )
        metadata = ScanMetadata(started, datetime.now(UTC), __version__, inventory, option_record).to_dict()
        if triage is not None:
            metadata |= triage.scan_metadata(digest.name for digest in digests)
        summary = {"targets": len(digests), "targets_by_status": by_target, "findings_by_status": by_finding}
        for writer in writers:
            writer.finish(metadata, summary)
    except BaseException:
        # Interrupted or failed: no half-written report under its final name.
        for writer in started_writers:
            abort = getattr(writer, "abort", None)
            if abort is not None:
                abort()
        raise
    return ScanOutcome(digests, summary, metadata)


async def _stream_results(
    targets: Sequence[Target],
    checks: Sequence[Check],
    options: ScanOptions,
    writers: Sequence[ReportWriter],
    started: datetime,
    on_result: Callable[[TargetDigest], None],
    triage: Triage | None,
) -> tuple[list[TargetDigest], dict[str, int], dict[str, int]]:
    digests: list[TargetDigest] = []
    by_target: dict[str, int] = {}
    by_finding: dict[str, int] = {}
    send, receive = trio.open_memory_channel(0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scan, targets, checks, options, send, started)
        async with receive:
            async for result in receive:
                document = result.to_dict()
                if triage is not None:
                    document = triage.apply(document)
                for writer in writers:
                    writer.add(document)
                digest = TargetDigest.from_document(document)
                _count(by_target, digest.status)
                for finding in digest.findings.values():
                    _count(by_finding, finding["status"])
                digests.append(digest)
                on_result(digest)
    return digests, by_target, by_finding
