"""A real server presenting an attacker-written certificate, scanned through the
command line with every output on: the strings must stay inert text in the
browser, the console, JUnit and the NDJSON feed, and nothing may crash."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from hostile_certificate import ANSI, HOSTILE_SANS, SCRIPT
from test_cli import run_cli, write_inventory
from test_junit_schemas import assert_valid


def test_hostile_certificate_is_harmless_in_every_output(tmp_path: Path, lab_process, open_page):
    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, ["hostile"])
    result = run_cli(
        "scan", str(inventory),
        "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"),
        "--junit", str(tmp_path / "junit.xml"), "--siem", "ecs", "--siem-out", str(tmp_path / "events.ndjson"),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # san-match and chain-complete fail; nothing crashes
    assert "Traceback" not in result.stderr

    report = json.loads((tmp_path / "r.json").read_text())
    target = report["targets"][0]
    leaf, second = target["certificates"]
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

    # HTML: escaped in the source, and in a real browser no script ran.
    html = (tmp_path / "r.html").read_text()
    assert SCRIPT not in html and "<img src=x" not in html
    opened = open_page(tmp_path / "r.html")
    assert opened.page.evaluate("typeof window.__pwned") == "undefined"
    assert opened.dialogs == []
    assert opened.errors == []
    assert "<script>window.__pwned=1</script>" in opened.page.inner_text("body")
    assert ANSI not in opened.page.inner_text("body")
