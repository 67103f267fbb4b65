"""A real server presenting an attacker-written certificate, scanned through the
command line with every output on: the strings must stay inert text in the
console, JSON, JUnit, the NDJSON feed and the HTML source (no browser needed), and
in a real browser, and nothing may crash."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import pytest
from hostile_certificate import ANSI, HOSTILE_SANS, SCRIPT
from test_cli import run_cli, write_inventory
from test_junit_schemas import assert_valid


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, lab_process):
    """The hostile lab endpoint scanned once, every output on: (directory, CLI result)."""
    directory = tmp_path_factory.mktemp("hostile")
    inventory = write_inventory(directory / "inventory.yaml", lab_process, ["hostile"])
    result = run_cli(
        "scan", str(inventory),
        "--json", str(directory / "r.json"), "--html", str(directory / "r.html"),
        "--junit", str(directory / "junit.xml"), "--siem", "ecs", "--siem-out", str(directory / "events.ndjson"),
    )  # fmt: skip
    return directory, result


def test_hostile_certificate_is_inert_text_in_every_file_and_the_console(scanned):
    tmp_path, result = scanned
    assert result.returncode == 1, result.stderr  # san-match and chain-complete fail; nothing crashes
    assert "Traceback" not in result.stderr

    report = json.loads((tmp_path / "r.json").read_text())
    target = report["targets"][0]
    leaf, second = (report["certificates"][sha256] for sha256 in target["certificates"])
    # RFC 4514 escapes <, > and " in names with a backslash; the rest is kept as sent.
    assert "window.__pwned=1" in leaf["subject"] and "onerror" in leaf["subject"] and ANSI in leaf["subject"]
    assert leaf["subject_alternative_names"] == [f"DNS:{name}" for name in HOSTILE_SANS]
    assert second["subject"] == "<undecodable subject>"
    statuses = {f["check"]: f["status"] for f in target["findings"]}
    assert statuses["san-match"] == "fail" and statuses["client-cert-required"] == "pass"
    assert "check crashed" not in json.dumps(target)

    # Console: no terminal escape from the certificate reaches the terminal.
    console = result.stdout + result.stderr
    assert "\x1b" not in console
    assert "\\x1b[31m" in console  # shown, escaped, in the san-match line

    # JUnit: well-formed, no element smuggled in, control characters made visible.
    junit_text = (tmp_path / "junit.xml").read_text()
    root = ElementTree.fromstring(junit_text)
    assert {element.tag for element in root.iter()} <= {
        "testsuites", "testsuite", "testcase", "properties", "property", "failure", "error", "skipped", "system-out",
        "system-err",
    }  # fmt: skip
    assert "\x1b" not in junit_text
    assert_valid(tmp_path / "junit.xml")  # and still what the xUnit and Ant schemas accept
    failure = next(case for case in root.iter("testcase") if case.get("name") == "san-match").find("failure")
    assert SCRIPT in failure.get("message")  # the SAN survives, as text

    # NDJSON: one event per line, the hostile text round-trips exactly, raw escapes never hit the file.
    raw = (tmp_path / "events.ndjson").read_bytes()
    assert b"\x1b" not in raw
    events = [json.loads(line) for line in raw.decode().splitlines()]
    assert len(events) == len(target["findings"]) + 1
    san_event = next(e for e in events if e.get("rule", {}).get("id") == "san-match")
    assert san_event["tls"]["server"]["x509"]["alternative_names"] == list(HOSTILE_SANS)

    # HTML source: escaped.
    html = (tmp_path / "r.html").read_text()
    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html


def test_hostile_certificate_runs_no_script_in_a_browser(scanned, open_page):
    tmp_path, _ = scanned
    opened = open_page(tmp_path / "r.html")
    assert opened.page.evaluate("typeof window.__pwned") == "undefined"
    assert opened.dialogs == []
    assert opened.errors == []
    assert "<script>window.__pwned=1</script>" in opened.page.inner_text("body")
    assert ANSI not in opened.page.inner_text("body")
