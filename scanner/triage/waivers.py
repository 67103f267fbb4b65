"""Waivers: accepted risks, each with an owner and an expiry date.

::

    waivers:
      - target: legacy-*          # target name or glob (fnmatch, case-sensitive)
        check: tls13-only         # check id
        reason: vendor appliance, TLS 1.3 in Q3 firmware
        owner: netsec@example.com
        expires: 2027-03-31       # the waiver applies through this day, not after it

All five keys are required and no other key is allowed. Every problem is a
:class:`WaiverError` with a one-line message naming the file, the entry (``waiver #n``,
counting from 1) and the field, in the style of the inventory errors.

``load_waivers(path, known_checks)`` reads the file into ``Waivers``, a sequence of
``Waiver`` values.

``Waivers.apply(target, today)`` takes a ``TargetReport`` and returns it with the
findings a waiver covers marked: ``Finding.waived`` is True and ``Finding.waiver`` is
the ``WaiverNote`` of the waiver (``Waiver.note()``). Only failing findings
(``Status.failing``: fail, warn, error) are waived; the original status is kept and the
reports show "waived" alongside it. When several waivers match one finding, the first
one in file order that has not expired wins; if all matching waivers have expired, the
first of them is attached as a note with ``expired=True`` and the finding is *not*
waived. Every other finding comes back with ``waived=False`` and no note.

``Waivers.report(today)`` is the ``WaiverReport`` of ``ScanInfo.waivers``: ``expired``
notes every waiver past its date (renew or remove it), ``unused`` every waiver still in
force that matched no failing finding so far (the risk is gone, or the pattern is
wrong). An expired waiver is listed only under ``expired``.

Whether a waived finding counts toward the exit code: see
``scanner.triage.baseline.gating_status`` (it does not, until the waiver expires).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.model.finding import WaiverNote
from mtls_audit.scanner.model.report import TargetReport, WaiverReport
from mtls_audit.scanner.model.text import describe as _describe
from mtls_audit.scanner.model.text import show as _show
from mtls_audit.scanner.model.text import type_name as _type_name
from mtls_audit.scanner.strict_yaml import StrictSafeLoaderWithoutDates

WAIVER_KEYS = ("target", "check", "reason", "owner", "expires")
TOP_LEVEL_KEYS = ("waivers",)


class WaiverError(UserError):
    """A problem in the waivers file, as one line: file, entry, field, reason."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        entry: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, file=source, field=field)
        self.source = source
        self.entry = entry  # 1-based position in the list


@dataclass(frozen=True)
class Waiver:
    target: str  # a name or an fnmatch pattern
    check: str
    reason: str
    owner: str
    expires: date
    position: int  # 1-based, in file order

    def matches(self, target_name: str, check: str) -> bool:
        return check == self.check and fnmatch.fnmatchcase(target_name, self.target)

    def expired(self, today: date) -> bool:
        """Valid through the ``expires`` day; expired from the day after."""
        return today > self.expires

    def note(self, *, expired: bool = False) -> WaiverNote:
        return WaiverNote(self.target, self.check, self.reason, self.owner, self.expires, expired)


class Waivers:
    """The loaded waivers; remembers which ones matched a failing finding."""

    def __init__(self, waivers: Collection[Waiver] = (), file: str | None = None) -> None:
        self.waivers: tuple[Waiver, ...] = tuple(waivers)
        self.file = file
        self._used: set[int] = set()

    def __len__(self) -> int:
        return len(self.waivers)

    def __iter__(self) -> Iterator[Waiver]:
        return iter(self.waivers)

    def match(self, target_name: str, check: str, today: date) -> Waiver | None:
        """The waiver for this pair: the first in force, else the first expired one."""
        matching = [w for w in self.waivers if w.matches(target_name, check)]
        for waiver in matching:
            if not waiver.expired(today):
                return waiver
        return matching[0] if matching else None

    def apply(self, target: TargetReport, today: date) -> TargetReport:
        """``target`` with each failing finding a waiver covers marked ``waived``."""
        findings = []
        for finding in target.findings:
            waiver = self.match(target.name, finding.check, today) if finding.status.failing else None
            if waiver is None:
                findings.append(replace(finding, waived=False, waiver=None))
                continue
            self._used.add(waiver.position)
            expired = waiver.expired(today)
            findings.append(replace(finding, waived=not expired, waiver=waiver.note(expired=expired)))
        return target.with_findings(findings)

    def report(self, today: date) -> WaiverReport:
        """The scan's ``waivers``: every waiver past its date, every one that matched nothing."""
        return WaiverReport(
            file=self.file,
            expired=tuple(w.note(expired=True) for w in self.waivers if w.expired(today)),
            unused=tuple(w.note() for w in self.waivers if not w.expired(today) and w.position not in self._used),
        )


# --------------------------------------------------------------------------- loading


def load_waivers(path: Path | str, known_checks: Collection[str] | None = None) -> Waivers:
    """Read and validate a waivers file; raise WaiverError (one line) on any problem.

    ``known_checks``: the check ids of this run; a waiver for any other id is an error
    (a typo would otherwise silently waive nothing). None skips that test.
    """
    path = Path(path)
    source = str(path)
    document = _parse(path, source)
    known = None if known_checks is None else frozenset(known_checks)
    return Waivers(_validate(document, source, known), file=source)


def _parse(path: Path, source: str) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise WaiverError(f"cannot read {source}: {error.strerror or type(error).__name__}", source=source) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise WaiverError(f"{source}: not UTF-8 text (bad byte at offset {error.start})", source=source) from None
    try:
        return yaml.load(text, Loader=StrictSafeLoaderWithoutDates)  # noqa: S506 - a SafeLoader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = error.problem or error.context or "invalid YAML"
        raise WaiverError(f"{source}: invalid YAML{where}: {what}", source=source) from None
    except (yaml.YAMLError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else "invalid YAML"
        raise WaiverError(f"{source}: YAML error: {reason}", source=source) from None


def _validate(document: Any, source: str, known: frozenset[str] | None) -> list[Waiver]:
    def error(
        reason: str, *, entry: int | None = None, label: str | None = None, field: str | None = None
    ) -> WaiverError:
        where = f"{label}: " if label else ""
        what = f"field '{field}': " if field and entry is not None else ""
        return WaiverError(f"{source}: {where}{what}{reason}", source=source, entry=entry, field=field)

    if document is None:
        raise error("is empty; expected a mapping with a 'waivers' list")
    if not isinstance(document, dict):
        raise error(f"expected a mapping with a 'waivers' list, got {_type_name(document)}")
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            raise error(_unknown_key(key, TOP_LEVEL_KEYS, where=" at top level"), field=str(key))
    if "waivers" not in document:
        raise error("missing key 'waivers' (a list of waivers)", field="waivers")
    entries = document["waivers"]
    if entries is None:
        return []  # "waivers:" with every entry commented out
    if not isinstance(entries, list):
        raise error(f"'waivers' must be a list, got {_type_name(entries)}", field="waivers")

    waivers: list[Waiver] = []
    seen: dict[tuple[str, str], int] = {}
    for position, raw in enumerate(entries, start=1):
        label = _entry_label(raw, position)
        if not isinstance(raw, dict):
            raise error(
                f"expected a mapping with {', '.join(WAIVER_KEYS)}, got {_type_name(raw)}",
                entry=position,
                label=label,
            )
        for key in raw:
            if key not in WAIVER_KEYS:
                raise error(_unknown_key(key, WAIVER_KEYS), entry=position, label=label, field=str(key))
        for key in WAIVER_KEYS:
            if key not in raw:
                raise error(f"missing (required: {_KEY_HELP[key]})", entry=position, label=label, field=key)
        try:
            target = _text(raw["target"], "target", single_line=True)
            check = _text(raw["check"], "check", single_line=True)
            if known is not None and check not in known:
                close = difflib.get_close_matches(check, sorted(known), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise _FieldError(
                    "check",
                    f"unknown check id {_show(check)} (expected one of: {', '.join(sorted(known))}){hint}",
                )
            reason = _text(raw["reason"], "reason")
            owner = _text(raw["owner"], "owner", single_line=True)
            expires = _date(raw["expires"])
        except _FieldError as problem:
            raise error(problem.reason, entry=position, label=label, field=problem.field) from None
        if (target, check) in seen:
            raise error(
                f"duplicate of waiver #{seen[(target, check)]} (same target and check)",
                entry=position,
                label=label,
                field="target",
            )
        seen[(target, check)] = position
        waivers.append(Waiver(target, check, reason, owner, expires, position))
    return waivers


_KEY_HELP = {
    "target": "a target name or glob such as 'legacy-*'",
    "check": "a check id",
    "reason": "why the risk is accepted",
    "owner": "who answers for it",
    "expires": "a date YYYY-MM-DD",
}


class _FieldError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _text(value: Any, field: str, *, single_line: bool = False) -> str:
    if not isinstance(value, str):
        raise _FieldError(field, f"must be a non-empty string, got {_describe(value)}")
    text = value.strip()
    if not text:
        raise _FieldError(field, "must not be empty")
    if single_line and ("\n" in text or "\r" in text):
        raise _FieldError(field, "must be a single line")
    return text


def _date(value: Any) -> date:
    # The loader keeps dates as strings; an explicit !!timestamp tag still gives objects.
    if isinstance(value, datetime):
        raise _FieldError("expires", "must be a date YYYY-MM-DD, not a date and time")
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise _FieldError("expires", f"must be a date YYYY-MM-DD, got {_describe(value)}")
    text = value.strip()
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise _FieldError("expires", f"{_show(text)} is not a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError as problem:
        raise _FieldError("expires", f"{_show(text)} is not a valid date ({problem})") from None


def _entry_label(raw: Any, position: int) -> str:
    if isinstance(raw, dict):
        target, check = raw.get("target"), raw.get("check")
        parts = [
            f"target {_show(target)}" if isinstance(target, str) and target.strip() else None,
            f"check {_show(check)}" if isinstance(check, str) and check.strip() else None,
        ]
        shown = ", ".join(part for part in parts if part)
        if shown:
            return f"waiver #{position} ({shown})"
    return f"waiver #{position}"


def _unknown_key(key: Any, allowed: Collection[str], where: str = "") -> str:
    shown = _show(key) if isinstance(key, str) else f"{_show(key)} ({_type_name(key)})"
    hint = ""
    if isinstance(key, str):
        close = difflib.get_close_matches(key, list(allowed), n=1)
        if close:
            hint = f"; did you mean '{close[0]}'?"
    return f"unknown key {shown}{where} (expected one of: {', '.join(allowed)}){hint}"
