"""The HTML writer streams: targets wait in a spill file, the writer keeps only the
page's tally, and the page it assembles is the one rendered from the whole document."""

from __future__ import annotations

import copy
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_reports import _canonical, _scan, _summary, _targets, _typed, _waived

from mtls_audit.reports.html.script import FILTER_SCRIPT, script_hash
from mtls_audit.reports.html.writer import HtmlReportWriter, render_html
from mtls_audit.scanner.model.report import ReportDocument, TargetReport


@pytest.fixture
def document() -> ReportDocument:
    targets = _targets()
    raw = {"schema_version": "1.2", "scan": _scan(), "summary": _summary(targets), "targets": targets}
    return _typed(_waived(_canonical(raw)))


def _write(path: Path, document: ReportDocument) -> Path:
    writer = HtmlReportWriter(path)
    writer.start(document.scan)
    for target in document.targets:
        writer.add(target)
    return writer.finish(document.scan, document.summary)


def test_streamed_page_is_the_page_of_the_whole_document(tmp_path, document):
    page = _write(tmp_path / "report.html", document).read_text(encoding="utf-8")
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
