"""The HTML writer streams: targets wait in a spill file, the writer keeps only the
page's tally, and the page it assembles is the one rendered from the whole document;
above ``INLINE_DETAILS_UP_TO`` targets it is the page's on-demand form (sections kept
as <noscript> text, which hostile text cannot end early, and all of it ASCII)."""

from __future__ import annotations

import copy
import gc
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_reports import _canonical, _scan, _summary, _targets, _typed, _waived

from mtls_audit.reports.html import view
from mtls_audit.reports.html.script import FILTER_SCRIPT, script_hash
from mtls_audit.reports.html.writer import HtmlReportWriter, render_html
from mtls_audit.scanner.model.report import ReportDocument, TargetReport


@pytest.fixture
def document() -> ReportDocument:
    targets = _targets()
    raw = {"schema_version": "1.3", "scan": _scan(), "summary": _summary(targets), "targets": targets}
    return _typed(_waived(_canonical(raw)))


def _write(path: Path, document: ReportDocument) -> Path:
    writer = HtmlReportWriter(path)
    writer.start(document.scan)
    for target in document.targets:
        writer.add(target)
    return writer.finish(document.scan, document.summary)


@pytest.mark.parametrize("form", ["inline", "on-demand"])
def test_streamed_page_is_the_page_of_the_whole_document(tmp_path, document, monkeypatch, form):
    if form == "on-demand":
        monkeypatch.setattr(view, "INLINE_DETAILS_UP_TO", len(document.targets) - 1)
    page = _write(tmp_path / "report.html", document).read_text(encoding="utf-8")
    assert page.count("<noscript><details") == (len(document.targets) if form == "on-demand" else 0)
    assert page == render_html(document)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # spill and temporary file gone


def _many(document: ReportDocument, count: int) -> Iterator[TargetReport]:
    """Targets made one at a time, so only the writer could keep them alive."""
    raw = document.targets[0].to_dict()
    for number in range(count):
        yield TargetReport.from_dict(copy.deepcopy(raw) | {"name": f"svc-{number:04d}"})


def _live_targets() -> int:
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, TargetReport))


def test_the_writer_holds_no_target_after_add(tmp_path, document):
    writer = HtmlReportWriter(tmp_path / "report.html")
    writer.start(document.scan)
    before = _live_targets()
    sizes = []
    for number, target in enumerate(_many(document, 400)):
        writer.add(target)
        if number in (9, 399):
            sizes.append((len(writer.tally.tags), len(writer.tally.check_ids), len(writer.tally.slugs)))
    del target
    assert _live_targets() == before  # no target outlives its add()
    assert sizes[0] == sizes[1]  # the tally does not grow with the number of targets
    assert writer.tally.target_count == 400
    spills = [p for p in tmp_path.iterdir() if p.name.endswith(".spill")]
    assert len(spills) == 1 and spills[0].stat().st_size > 0
    page = writer.finish(document.scan, document.summary).read_text(encoding="utf-8")
    assert page.count('<section class="target ') == 400
    assert page.count("<noscript><details") == 400  # the on-demand form
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_abort_and_a_failed_render_leave_nothing(tmp_path, document, monkeypatch):
    writer = HtmlReportWriter(tmp_path / "report.html")
    writer.start(document.scan)
    writer.add(document.targets[0])
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        writer.add(document.targets[0])

    def broken(*args, **kwargs):
        yield "<!DOCTYPE html>"
        raise RuntimeError("template blew up")

    monkeypatch.setattr("mtls_audit.reports.html.writer.render_chunks", broken)
    writer = HtmlReportWriter(tmp_path / "report.html")
    writer.start(document.scan)
    writer.add(document.targets[0])
    with pytest.raises(RuntimeError, match="template blew up"):
        writer.finish(document.scan, document.summary)
    assert list(tmp_path.iterdir()) == []


def test_the_filter_script_is_the_shipped_file_and_the_csp_pins_its_text():
    shipped = (Path(__file__).parent.parent / "reports" / "html" / "filter.js").read_text(encoding="ascii")
    assert FILTER_SCRIPT == shipped
    import base64
    import hashlib

    assert script_hash() == "'sha256-" + base64.b64encode(hashlib.sha256(shipped.encode()).digest()).decode() + "'"


def _copies(document: ReportDocument, count: int) -> ReportDocument:
    targets = tuple(_many(document, count))
    return ReportDocument(
        scan=document.scan, summary=document.summary, targets=targets, schema_version=document.schema_version
    )


def test_the_page_takes_its_on_demand_form_above_the_threshold(document):
    at = render_html(_copies(document, view.INLINE_DETAILS_UP_TO))
    above = render_html(_copies(document, view.INLINE_DETAILS_UP_TO + 1))
    assert "<noscript><details" not in at
    assert at.count('<section class="target ') == view.INLINE_DETAILS_UP_TO
    assert above.count("<noscript><details") == above.count("</details></noscript>") == view.INLINE_DETAILS_UP_TO + 1
    # the on-demand matrix: short cells, no link and no title per cell
    matrix = above.split('<table class="matrix">', 1)[1].split("</table>", 1)[0]
    assert re.search(r'<td class="cell s-pass">PASS<td class="cell', matrix)
    assert matrix.count("<a href") == view.INLINE_DETAILS_UP_TO + 1  # the target names
    assert "title=" not in matrix
    # and no section outside its <noscript>
    outside = re.sub(r"<noscript>.*?</noscript>", "", above, flags=re.S)
    assert '<section class="target ' not in outside and 'id="target-1"' not in outside


def test_the_on_demand_page_is_ascii_and_the_inline_one_keeps_its_characters(document):
    inline = render_html(document)
    assert "\u2713" in inline or "\u2014" in inline  # a check mark or a dash, as written
    on_demand = render_html(_copies(document, view.INLINE_DETAILS_UP_TO + 1))
    assert on_demand.isascii()
    assert "&#8212;" in on_demand  # the same dash, as a reference the browser reads back


def test_hostile_text_cannot_end_a_noscript_section_early(document):
    hostile = "</noscript><script>alert(1)</script><noscript>"
    targets = tuple(
        TargetReport.from_dict(target.to_dict() | {"name": f"{hostile}-{number}"})
        for number, target in enumerate(_many(document, view.INLINE_DETAILS_UP_TO + 1))
    )
    page = render_html(
        ReportDocument(scan=document.scan, summary=document.summary, targets=targets, schema_version="1.3")
    )
    assert page.count("</noscript>") == len(targets)
    assert page.lower().count("<script") == 1
    assert "&lt;/noscript&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_script_parses_only_the_pages_own_noscript_text():
    """The one exception to 'the script never builds HTML': it parses the text of the
    page's <noscript> sections (markup the page escaped when it was written), with
    DOMParser, whose document runs nothing; and nothing else."""
    assert FILTER_SCRIPT.isascii()
    assert FILTER_SCRIPT.count("DOMParser") == 1
    assert FILTER_SCRIPT.count("parseFromString(") == 1
    assert 'if (slot.tagName !== "NOSCRIPT") { return slot; }' in FILTER_SCRIPT
    assert 'new DOMParser().parseFromString(slot.textContent, "text/html")' in FILTER_SCRIPT
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "createContextualFragment",
        "setHTML",
        "document.write",
        "eval(",
        "Function(",
        "setTimeout",
        "setInterval",
        "createElement",
        "location",
        "fetch",
        "XMLHttpRequest",
        ".src",
        ".href",
    ):
        assert sink not in FILTER_SCRIPT, sink
