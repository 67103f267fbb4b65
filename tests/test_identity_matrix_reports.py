"""The identity matrix in the reports: a table per target in the HTML page, and a
compact table per target that matters on the console, each marking the cells that go
against the policy in a way that reads without colour."""

from __future__ import annotations

import html
import io
import re
from dataclasses import replace
from typing import Any

import pytest
from test_reports import _canonical, _scan, _summary, _targets, _typed

from mtls_audit.reports.console import render_identity_matrices
from mtls_audit.reports.html.writer import HtmlReportWriter, render_html
from mtls_audit.scanner.model.report import MatrixCell, MatrixRow, ReportDocument, TargetDigest, TargetReport

HOSTILE = "<script>alert(1)</script>"
MINTED_SHA = "0123456789abcdef" + "f" * 48
VERSIONS = ("TLSv1.2", "TLSv1.3")


def _row(
    client: str,
    kind: str,
    expect: str | None,
    cells: tuple[tuple[str, str, bool | None], ...],
    detail: str = "",
    sha: str | None = None,
) -> MatrixRow:
    return MatrixRow(
        client,
        kind,
        expect,
        tuple(MatrixCell(v, observed, where, ok) for v, (observed, where, ok) in zip(VERSIONS, cells, strict=True)),
        detail,
        sha,
    )


def _matrix() -> tuple[MatrixRow, ...]:
    return (
        _row("lab-client", "identity", "allow", (("allowed", "http 200", True), ("allowed", "http 200", True))),
        _row(
            "no certificate",
            "impostor",
            "deny",
            (("blocked", "handshake, alert 116", True), ("blocked", "after handshake, alert 116", True)),
        ),
        _row(
            "web POST /transfer",
            "rule",
            "deny",
            (("blocked", "http 403", True), ("allowed", "http 200", False)),
            detail="POST /transfer",
        ),
        _row(
            "expired",
            "minted",
            "deny",
            (("allowed", "tls", False), ("unknown", "connection reset before a verdict", None)),
            detail="expired: notAfter in the past",
            sha=MINTED_SHA,
        ),
        _row("cn-only", "minted", None, (("allowed", "tls", None), ("not-probed", "", None))),
    )


def _target_dicts(matrix: tuple[MatrixRow, ...]) -> list[dict[str, Any]]:
    targets = _targets()
    targets[0]["identity_matrix"] = [row.to_dict() for row in matrix]
    return targets


def _document(matrix: tuple[MatrixRow, ...]) -> ReportDocument:
    targets = _target_dicts(matrix)
    raw = {"schema_version": "1.3", "scan": _scan(), "summary": _summary(targets), "targets": targets}
    return _typed(_canonical(raw))


def _identity_tables(page: str) -> list[str]:
    return re.findall(r'<table class="identity">.*?</table>', page, flags=re.S)


def _cells(table: str) -> list[list[str]]:
    """Each body row's cells as (tag-stripped, unescaped) text, header cell first."""
    body = table.split("<tbody>", 1)[1]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S):
        cells = re.findall(r"<t[hd]\b[^>]*>(.*?)</t[hd]>", row, flags=re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", " ", cell)).split() for cell in cells])
    return [[" ".join(words) for words in row] for row in rows]


# -- HTML ----------------------------------------------------------------------------


def test_html_shows_the_matrix_with_one_row_per_client_and_a_column_per_version():
    page = render_html(_document(_matrix()))
    tables = _identity_tables(page)
    assert len(tables) == 1  # only the target with rows gets a table
    table = tables[0]
    head = re.findall(r"<th\b[^>]*>(.*?)</th>", table.split("<tbody>")[0])
    assert head == ["Client", "Kind", "Expected", "TLSv1.2", "TLSv1.3"]
    rows = _cells(table)
    assert [row[1:3] for row in rows] == [
        ["our identity", "allow"],
        ["impostor", "deny"],
        ["access rule", "deny"],
        ["minted copy", "deny"],
        ["minted copy", "—"],
    ]
    assert rows[0][3:] == ["✓ allowed (http 200)", "✓ allowed (http 200)"]
    assert rows[1][3:] == ["✓ blocked (handshake, alert 116)", "✓ blocked (after handshake, alert 116)"]
    assert rows[2][3:] == ["✓ blocked (http 403)", "WRONG allowed (http 200)"]
    assert rows[3][3:] == ["WRONG allowed (tls)", "unknown: connection reset before a verdict"]
    assert rows[4][3:] == ["allowed (tls)", "not probed"]
    # the access rule's request is in its name, so it is not repeated under it
    assert rows[2][0] == "web POST /transfer"
    # the minted copy shows its defect and a shortened fingerprint, the full one in a title
    assert rows[3][0] == "expired expired: notAfter in the past SHA-256 0123456789abcdef…"
    assert f'<code class="fp" title="{MINTED_SHA}">0123456789abcdef…</code>' in table
    assert "2 WRONG" in page  # the heading counts the wrong cells


def test_html_styles_cells_by_expectation():
    table = _identity_tables(render_html(_document(_matrix())))[0]
    classes = re.findall(r'<td class="m-(\w+)"', table)
    assert classes == ["right", "right", "right", "right", "right", "wrong", "wrong", "none", "none", "none"]
    assert '<tr class="wrong">' in table and table.count('<tr class="wrong">') == 2
    wrong_cell = re.search(r'<td class="m-wrong" title="([^"]*)">', table)
    assert wrong_cell is not None and wrong_cell.group(1) == "expected deny: NOT as expected"


def test_html_without_a_matrix_shows_no_table():
    page = render_html(_document(()))
    assert _identity_tables(page) == []
    assert "Identity matrix" not in page


def test_html_escapes_hostile_matrix_text():
    hostile = (
        _row(
            HOSTILE,
            "rule",
            "deny",
            (("allowed", f"http 200 {HOSTILE}", False), ("unknown", 'reason "><img src=x>\x1b[2J', None)),
            detail=f"{HOSTILE} detail",
            sha=f'"><b>{"a" * 64}',
        ),
    )
    page = render_html(_document(hostile))
    table = _identity_tables(page)[0]
    assert "<script" not in table.lower() and "<img" not in table.lower() and "<b>" not in table
    assert "allowed (http 200 &lt;script&gt;alert(1)&lt;/script&gt;)" in table
    assert "&lt;script&gt;alert(1)&lt;/script&gt; detail" in table
    assert "unknown: reason &#34;&gt;&lt;img src=x&gt;\\x1b[2J" in table  # control character made visible
    assert 'title="&#34;&gt;&lt;b&gt;aaa' in table  # the fingerprint cannot leave its attribute
    assert "\x1b" not in page


def test_streamed_html_keeps_the_matrix_through_the_spill_file(tmp_path):
    document = _document(_matrix())
    writer = HtmlReportWriter(tmp_path / "report.html")
    writer.start(document.scan)
    for target in document.targets:
        writer.add(target)
    page = writer.finish(document.scan, document.summary).read_text(encoding="utf-8")
    assert page == render_html(document)
    assert len(_identity_tables(page)) == 1


# -- console -------------------------------------------------------------------------


def _digest(name: str, matrix: tuple[MatrixRow, ...]) -> TargetDigest:
    target = TargetReport.from_dict(_targets()[0])
    return TargetDigest.of(replace(target, name=name, identity_matrix=matrix))


def _console(targets: list[TargetDigest]) -> str:
    stream = io.StringIO()
    render_identity_matrices(targets, stream=stream, width=200)
    return stream.getvalue()


def _all_as_expected() -> tuple[MatrixRow, ...]:
    return tuple(row for row in _matrix() if row.kind in ("identity", "impostor"))


def test_console_prints_only_targets_with_a_rule_or_a_wrong_cell():
    rule_ok = tuple(
        replace(row, cells=tuple(replace(c, as_expected=True) for c in row.cells)) if row.kind == "rule" else row
        for row in _all_as_expected() + (_matrix()[2],)
    )
    out = _console(
        [
            _digest("quiet-svc", _all_as_expected()),
            _digest("rules-svc", rule_ok),
            _digest("broken-svc", _matrix()),
            _digest("empty-svc", ()),
        ]
    )
    assert "identity matrix: rules-svc" in out
    assert "identity matrix: broken-svc" in out
    assert "quiet-svc" not in out and "empty-svc" not in out
    assert out.index("rules-svc") < out.index("broken-svc")
    rules_part = out.split("identity matrix: broken-svc")[0]
    assert "WRONG" not in rules_part  # a rule that holds prints without a mark


def test_console_prints_nothing_when_no_target_qualifies():
    assert _console([_digest("quiet-svc", _all_as_expected()), _digest("empty-svc", ())]) == ""
    assert _console([]) == ""


def test_console_marks_wrong_cells_without_colour():
    out = _console([_digest("broken-svc", _matrix())])
    assert "\x1b[" not in out  # a StringIO is no terminal: no colour codes at all
    lines = out.splitlines()
    header = next(line for line in lines if "client" in line and "expect" in line)
    assert "TLSv1.2" in header and "TLSv1.3" in header
    rule = next(line for line in lines if "web POST /transfer" in line)
    assert "blocked http 403" in rule and "ALLOWED http 200 [WRONG]" in rule
    expired = next(line for line in lines if "│ expired " in line)
    assert "ALLOWED tls [WRONG]" in expired and "unknown: connection reset before a verdict" in expired
    identity = next(line for line in lines if "lab-client" in line)
    assert "allowed http 200" in identity and "WRONG" not in identity
    cn_only = next(line for line in lines if "cn-only" in line)
    assert re.search(r"│ -\s+│", cn_only)  # no expectation, and the not-probed cell
    assert "WRONG broken-svc: 2 cells against the policy" in out


def test_console_colours_wrong_cells_on_a_terminal():
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]
    render_identity_matrices([_digest("broken-svc", _matrix())], stream=stream, width=200)
    out = stream.getvalue()
    assert "\x1b[1;31mALLOWED http 200 [WRONG]" in out


@pytest.mark.parametrize("field", ["name", "client", "where", "version"])
def test_console_makes_hostile_text_printable(field):
    payload = "evil\x1b[2J\x07[bold]x[/bold]\r\nnext"
    matrix = _matrix()
    rule = matrix[2]
    if field == "client":
        rule = replace(rule, client=payload)
    elif field == "where":
        rule = replace(rule, cells=(replace(rule.cells[0], where=payload), rule.cells[1]))
    elif field == "version":
        rule = replace(rule, cells=(rule.cells[0], replace(rule.cells[1], version=payload)))
    matrix = (*matrix[:2], rule, *matrix[3:])
    out = _console([_digest(payload if field == "name" else "svc", matrix)])
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "\\x1b[2J\\x07[bold]x[/bold]" in out  # shown as escapes, markup left as text
    assert "evil\\x1b" in out
