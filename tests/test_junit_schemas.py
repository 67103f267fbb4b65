"""The JUnit file against the schemas CI tools hold it to (vendored under
tests/schemas/junit/: the Jenkins xUnit plugin's junit-10.xsd and the Ant JUnit schema),
and the writer's memory: it streams targets to a spill file and holds none of them."""

from __future__ import annotations

import gc
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import xmlschema
from test_junit import WAIVERS, _hostile_target, _scan, _summary, _target, _targets, _typed, _write

from mtls_audit.reports.junit import JunitReportWriter, suite_element
from mtls_audit.scanner.model.report import TargetReport
from mtls_audit.scanner.triage.waivers import load_waivers

SCHEMAS = Path(__file__).parent / "schemas" / "junit"
XSDS = {
    "jenkins-xunit": xmlschema.XMLSchema(SCHEMAS / "jenkins-xunit-junit-10.xsd"),
    "ant": xmlschema.XMLSchema(SCHEMAS / "ant-junit-windyroad.xsd"),
}


def assert_valid(path: Path) -> None:
    for name, xsd in XSDS.items():
        problems = [str(error).splitlines()[0] for error in xsd.iter_errors(str(path))]
        assert problems == [], f"{path.name} against {name}: {problems[:3]}"


def _all_kinds(tmp_path: Path) -> list[TargetReport]:
    waivers_file = tmp_path / "waivers.yaml"
    waivers_file.write_text(WAIVERS, encoding="utf-8")
    waivers = load_waivers(waivers_file, known_checks={"client-cert-required", "tls13-only"})
    targets = [waivers.apply(target, date(2026, 11, 26)) for target in _typed(_targets())]
    return targets + _typed([_hostile_target(text) for text in ("<&>\"'", "nul \x00 esc \x1b", "a\nb", "\ud800")])


@pytest.mark.parametrize("fail_on", ["fail", "warn"])
def test_every_kind_of_result_validates_against_both_schemas(tmp_path, fail_on):
    assert_valid(_write(tmp_path, _all_kinds(tmp_path), fail_on=fail_on))


def test_a_report_without_targets_validates(tmp_path):
    assert_valid(_write(tmp_path, []))


def test_the_schemas_do_reject_what_they_are_known_to_reject(tmp_path):
    """The vendored schemas are strict where it matters to us: skipped on the root
    (xUnit), a test case without time or with system-out (Ant)."""
    path = _write(tmp_path, _typed(_targets()))
    text = path.read_text(encoding="utf-8")
    broken = tmp_path / "broken.xml"
    broken.write_text(text.replace("<testsuites>", '<testsuites skipped="1">', 1), encoding="utf-8")
    assert not XSDS["jenkins-xunit"].is_valid(str(broken))
    broken.write_text(text.replace(' time="0" />', " />", 1), encoding="utf-8")
    assert not XSDS["ant"].is_valid(str(broken))
    broken.write_text(text.replace(' time="0" />', ' time="0"><system-out>x</system-out></testcase>', 1))
    assert not XSDS["ant"].is_valid(str(broken))


# -- streaming ------------------------------------------------------------------------------


def _many(count: int) -> Iterator[TargetReport]:
    """Targets made one at a time, so only the writer could keep them alive."""
    for number in range(count):
        yield _typed([_target(f"svc-{number:04d}", _targets()[0]["findings"])])[0]


def _live_targets() -> int:
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, TargetReport))


def test_the_writer_holds_no_target_after_add(tmp_path):
    writer = JunitReportWriter(tmp_path / "junit.xml")
    writer.start(_scan())
    before = _live_targets()
    for target in _many(300):
        writer.add(target)
    del target
    assert _live_targets() == before  # every target was let go once written
    assert writer.suites == 300
    held = [value for value in vars(writer).values() if isinstance(value, list | dict | tuple | set)]
    assert held == []  # no list of suites or cases grows with the scan
    spills = [p for p in tmp_path.iterdir() if p.name.endswith(".spill")]
    assert len(spills) == 1 and spills[0].stat().st_size > 0  # the suites wait on disk
    writer.finish(_scan(), _summary([]))
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]


def test_streamed_output_is_the_same_as_the_whole_tree_at_once(tmp_path):
    """What the spill file assembles is byte for byte the document ElementTree writes
    when it holds every suite in memory (how the writer worked before it streamed)."""
    targets = _all_kinds(tmp_path)
    path = _write(tmp_path, targets, fail_on="warn")

    root = ET.Element("testsuites")
    for number, target in enumerate(targets):
        suite = suite_element(target, "warn", suite_id=number, timestamp="2026-11-26T10:00:00")
        suite.set("timestamp", "2026-11-26T10:00:00")
        root.append(suite)
    ET.indent(root, space="  ")
    expected = ET.tostring(root, encoding="unicode", xml_declaration=True).replace(
        "<?xml version='1.0' encoding='us-ascii'?>", "<?xml version='1.0' encoding='utf-8'?>"
    )
    assert path.read_text(encoding="utf-8") == expected + "\n"


def test_abort_deletes_the_spill_file(tmp_path):
    writer = JunitReportWriter(tmp_path / "junit.xml")
    writer.start(_scan())
    writer.add(_typed(_targets())[0])
    assert len(list(tmp_path.iterdir())) == 1  # the spill file
    writer.abort()
    assert list(tmp_path.iterdir()) == []
