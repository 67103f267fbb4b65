"""The HTML report of 10,000 targets in a real browser: the structure that makes it
load in under two seconds and filter in well under 200 ms (bench/html_at_scale.py
measures the times; this holds the shape, which does not depend on the machine).

- The matrix has one row per target of short cells (no link or title per cell) in
  bodies of a hundred rows, each laid out only near the viewport
  (content-visibility), so the page stays at ~16 elements per target.
- No target's section is elements until it is opened: each is text in a <noscript>;
  opening a target from its name or a cell turns that one into elements.
- The filter reads the rows once and toggles `hidden` on rows and bodies; it shows
  exactly the rows the report says it should.
- With JavaScript off, the same page has every section, folded, and a target's
  findings and commands are one click away (on a smaller report: 10,000 sections as
  elements would take the browser minutes, which is the point of the form).

The report is the demo's twelve targets replicated with distinct names, addresses,
tags and statuses (the bench's generator), written by the real streaming writer.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mtls_audit.reports.html.view import INLINE_DETAILS_UP_TO, MATRIX_ROWS_PER_BODY
from mtls_audit.reports.html.writer import HtmlReportWriter

REPO = Path(__file__).resolve().parent.parent
TARGETS = 10_000
ROWS = "table.matrix tbody tr"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("html_at_scale", REPO / "bench" / "html_at_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Written:
    """A generated page and what the report it was written from says, per target."""

    path: Path
    names: list[str]
    statuses: list[str]
    tags: list[list[str]]
    findings: list[list[tuple[str, str]]]  # (check, status shown) per finding
    commands: list[int]


def _write(path: Path, document: Any, count: int) -> Written:
    bench = _bench()
    names: list[str] = []
    statuses: list[str] = []
    tags: list[list[str]] = []
    findings: list[list[tuple[str, str]]] = []
    commands: list[int] = []

    def recorded() -> Iterator[Any]:
        for target in bench.replicated_targets(document, count):
            names.append(target.name)
            statuses.append(target.status.value)
            tags.append(list(target.tags))
            findings.append([(f.check, "waived" if f.waived else f.status.value) for f in target.findings])
            commands.append(sum(len(f.commands) for f in target.findings))
            yield target

    writer = HtmlReportWriter(path, schema_version=document.schema_version)
    writer.start(document.scan)
    for target in recorded():
        writer.add(target)
    writer.finish(document.scan, document.summary)
    return Written(path, names, statuses, tags, findings, commands)


@pytest.fixture(scope="module")
def demo_document(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _bench().demo_report(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def large(demo_document: Any, tmp_path_factory: pytest.TempPathFactory) -> Written:
    return _write(tmp_path_factory.mktemp("large") / "report.html", demo_document, TARGETS)


@pytest.fixture(scope="module")
def medium(demo_document: Any, tmp_path_factory: pytest.TempPathFactory) -> Written:
    """Just large enough for the on-demand form, small enough to open with JavaScript off."""
    return _write(tmp_path_factory.mktemp("medium") / "report.html", demo_document, INLINE_DETAILS_UP_TO + 125)


def _shown(page: Any) -> list[str]:
    """Names of the rows the filter leaves (neither the row nor its body hidden)."""
    return page.eval_on_selector_all(
        ROWS, "rows => rows.filter(r => !r.hidden && !r.parentElement.hidden).map(r => r.dataset.name)"
    )


def test_the_page_is_a_compact_matrix_and_sections_kept_as_text(open_page, large):
    opened = open_page(large.path)
    page = opened.page
    opened.assert_clean()
    assert page.is_visible("#filters")

    # ~16 elements per target: the old page had ~1,500 (a section as elements, a link
    # and a title per matrix cell); the bound fails long before load times do
    elements = page.evaluate("document.getElementsByTagName('*').length")
    assert elements < 17 * TARGETS + 2_000, elements

    # one row per target, in report order, with its status; cells are short
    assert page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.name)") == large.names
    assert page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.status)") == large.statuses
    assert page.locator("table.matrix td.cell a, table.matrix td.cell[title]").count() == 0
    checks = page.eval_on_selector_all("table.matrix th.check", "ths => ths.map(th => th.textContent)")
    assert len(checks) == 10
    for index in (0, 1, 96, TARGETS // 3, TARGETS - 1):  # 96: a target that could not be scanned
        statuses = dict(large.findings[index])
        expected = [statuses[check].upper() if check in statuses else "\u2014" for check in checks]
        cells = page.locator(ROWS).nth(index).locator("td.cell")
        assert cells.evaluate_all("cells => cells.map(c => c.textContent)") == expected

    # rows come in bodies, each skipped by layout while off screen
    bodies = page.eval_on_selector_all(
        "table.matrix > tbody", "bodies => bodies.map(b => [b.rows.length, getComputedStyle(b).contentVisibility])"
    )
    assert len(bodies) == math.ceil(TARGETS / MATRIX_ROWS_PER_BODY)
    assert all(visibility == "auto" for _, visibility in bodies)
    assert sum(rows for rows, _ in bodies) == TARGETS

    # no section is elements yet: each waits as the text of a <noscript>, in order
    assert page.locator("section.target, article.finding, #targets details").count() == 0
    assert page.locator("#targets > noscript").count() == TARGETS
    first = page.eval_on_selector("#targets > noscript", "n => [n.childElementCount, n.textContent]")
    assert first[0] == 0 and 'id="target-1"' in first[1] and large.names[0] in first[1]


def test_a_target_opens_on_demand_from_its_name_or_a_cell(open_page, large):
    opened = open_page(large.path)
    page = opened.page
    number = TARGETS // 2 + 7  # 1-based
    index = number - 1
    row = page.locator(ROWS).nth(index)
    row.scroll_into_view_if_needed()
    row.locator("td.target-col a").click()

    # only that target became elements: its section, with every finding and command
    assert page.locator("section.target").count() == 1
    assert page.locator("#targets > noscript").count() == TARGETS - 1
    section = page.locator(f"#target-{number}")
    assert section.is_visible() and section.get_attribute("class").startswith("target ")
    top = section.evaluate("s => s.getBoundingClientRect().top")
    assert -1 < top < page.viewport_size["height"]  # scrolled to
    assert large.names[index] in section.locator("h2").inner_text()
    shown = section.locator("article.finding").evaluate_all(
        "articles => articles.map(a => [a.querySelector('h4 code').textContent, a.querySelector('.badge').textContent])"
    )
    assert sorted((check, status.upper()) for check, status in shown) == sorted(
        (check, status.upper()) for check, status in large.findings[index]
    )
    assert section.locator("pre.cmd").count() == large.commands[index] > 0
    assert "openssl s_client" in section.locator("pre.cmd").first.inner_text()

    # "back to the matrix" goes back to the row, not to the top of 10,000 rows
    section.locator("a.top").click()
    assert page.evaluate("document.activeElement.getAttribute('href')") == f"#target-{number}"

    # a failing cell of another target opens that target at that finding
    other = next(i for i in range(TARGETS // 4, TARGETS) if any(s == "fail" for _, s in large.findings[i]))
    check = next(c for c, s in large.findings[other] if s == "fail")
    headers = page.eval_on_selector_all("table.matrix th.check", "ths => ths.map(th => th.textContent)")
    cell = page.locator(ROWS).nth(other).locator("td.cell").nth(headers.index(check))
    cell.scroll_into_view_if_needed()
    assert cell.text_content() == "FAIL"
    cell.click()
    finding = page.locator("article.finding.picked")
    assert finding.count() == 1 and finding.is_visible()
    assert finding.get_attribute("id").startswith(f"target-{other + 1}-")
    assert finding.locator("h4 code").first.inner_text() == check
    assert page.locator("section.target").count() == 2

    # a link into the report opens its target too: on the page, and on a fresh load
    page.evaluate("location.hash = '#target-42'")
    assert page.locator("#target-42").is_visible()
    page.evaluate("location.hash = '#target-43-san-match'")
    page.reload(wait_until="load")
    assert page.locator("section.target").count() == 1
    assert page.locator("#target-43-san-match").is_visible()
    opened.assert_clean()


def test_the_filter_works_on_the_compact_matrix(open_page, large):
    opened = open_page(large.path)
    page = opened.page
    count = page.locator("#f-count")
    assert count.inner_text() == f"showing all {TARGETS} targets"

    # a unique name leaves its row, and only the body holding it
    name = large.names[6_543]
    page.fill("#f-text", name)
    assert _shown(page) == [name]
    assert page.is_visible(f"{ROWS}[data-name='{name}']")
    assert page.locator("table.matrix > tbody:not([hidden])").count() == 1
    assert count.inner_text() == f"showing 1 of {TARGETS} targets"

    # a status, a tag, and both: exactly the rows the report says
    page.fill("#f-text", "")
    page.select_option("#f-status", "fail")
    failing = [n for n, s in zip(large.names, large.statuses, strict=True) if s == "fail"]
    assert 0 < len(failing) < TARGETS and _shown(page) == failing
    page.select_option("#f-tag", "eu-west")
    assert _shown(page) == [
        n for n, s, t in zip(large.names, large.statuses, large.tags, strict=True) if s == "fail" and "eu-west" in t
    ]
    page.select_option("#f-status", "error")
    assert _shown(page) == [
        n for n, s, t in zip(large.names, large.statuses, large.tags, strict=True) if s == "error" and "eu-west" in t
    ]

    # an opened section follows its row
    page.click("#f-reset")
    assert len(_shown(page)) == TARGETS
    page.locator(ROWS).nth(2).locator("td.target-col a").click()
    page.fill("#f-text", large.names[3])
    assert not page.is_visible("#target-3")
    page.fill("#f-text", large.names[2])
    assert page.is_visible("#target-3")

    # nothing matches: said so; cleared: every row and body back
    page.fill("#f-text", "no target is called this")
    assert _shown(page) == [] and page.is_visible("#f-none")
    assert page.locator("table.matrix > tbody:not([hidden])").count() == 0
    page.click("#f-reset")
    assert len(_shown(page)) == TARGETS and not page.is_visible("#f-none")
    assert page.locator("table.matrix > tbody[hidden], table.matrix tr[hidden]").count() == 0
    opened.assert_clean()


def test_without_javascript_every_finding_and_command_is_reachable(open_page, medium):
    count = len(medium.names)
    opened = open_page(medium.path, java_script_enabled=False)
    page = opened.page
    assert not page.is_visible("#filters")
    assert opened.errors == []

    # the browser parses each <noscript> as markup: every section is there, folded
    assert page.locator("#targets details.fold").count() == count
    assert page.locator("#targets section.target").count() == count
    assert page.locator("details.fold[open]").count() == 0
    assert page.locator(ROWS).count() == count and page.is_visible(f"{ROWS} td.target-col a")

    # a target's name in the matrix opens its section, findings and commands in view
    index = next(i for i in range(20, count) if dict(medium.findings[i]).get("client-cert-required") == "fail")
    page.locator(ROWS).nth(index).locator("td.target-col a").click()
    section = page.locator(f"#target-{index + 1}")
    assert section.is_visible()
    findings = section.locator("article.finding")
    assert findings.count() == len(medium.findings[index])
    failing = section.locator("article.finding.s-fail:has(pre.cmd)").first
    assert failing.is_visible()
    assert "openssl s_client" in failing.locator("pre.cmd").first.inner_text()
    assert failing.locator(".label", has_text="Evidence").is_visible()
    assert failing.locator("dl.kv").first.is_visible()
    assert section.locator("pre.cmd").count() == medium.commands[index]
    # every other section stays folded
    assert page.locator("details.fold[open]").count() == 1
