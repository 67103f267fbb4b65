"""The HTML report in a real browser (headless Chromium driven by Playwright).

What a string search over the HTML cannot show: the page runs without script errors or
Content-Security-Policy violations (so the hash of the inline filter script is right),
the filter hides and shows matrix rows and target sections together, every matrix link
lands on an element, the page is complete with JavaScript off, and hostile certificate
text stays text, in both forms of the page: the demo's, with every section on the
page, and the on-demand form of a large report, whose sections the script makes from
<noscript> text (tests/test_html_scale.py holds that form at 10,000 targets).

Needs /usr/bin/chromium (Debian's ``chromium`` package) and the ``playwright`` Python
package; Playwright's own browser download is not used. Without them the tests skip,
unless MTLS_AUDIT_REQUIRE_SERVERS=1 (as CI sets), where they fail.

``MTLS_AUDIT_UPDATE_SCREENSHOT=1`` also refreshes ``docs/report.png`` (the README's
screenshot) from the demo report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mtls_audit.reports.html.writer import write_html
from mtls_audit.scanner.model.report import ReportDocument

REPO = Path(__file__).resolve().parent.parent
README_SCREENSHOT = REPO / "docs" / "report.png"


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    base = tmp_path_factory.mktemp("demo")
    # a relative output directory, so the report names its inventory as the README's
    # demo does (mtls-audit-demo/inventory.yaml), not by a temporary path
    output = Path("mtls-audit-demo")
    result = subprocess.run(
        [sys.executable, "-m", "mtls_audit.scanner.cli", "demo", "--output", str(output)],
        cwd=base,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = base / output
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    return output / "report.html", report


ROWS = "table.matrix tbody tr"
SECTIONS = "section.target"


def test_demo_report_in_a_browser(open_page, demo_report, tmp_path):
    html_path, report = demo_report
    targets = report["targets"]
    names = [t["name"] for t in targets]
    opened = open_page(html_path)
    page = opened.page

    # the filter script ran (it un-hides its bar) without errors or CSP violations
    assert page.is_visible("#filters")
    opened.assert_clean()

    # a report this small has every section on the page, not kept for later
    assert page.locator("#targets > noscript").count() == 0

    # one matrix row and one section per target, in report order
    assert page.locator(ROWS).count() == len(targets)
    assert page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.name)") == names
    assert page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.status)") == [t["status"] for t in targets]
    assert opened.visible_names(ROWS) == names and opened.visible_names(SECTIONS) == names

    # every cell shows its finding's status and links to an element on the page
    cells = page.eval_on_selector_all(
        f"{ROWS} td.cell a",
        """links => links.map(a => [
            a.closest('tr').dataset.name,
            a.getAttribute('href'),
            Array.from(a.parentElement.classList).find(c => c.startsWith('s-')).slice(2),
            a.textContent,
        ])""",
    )
    shown = sorted((name, status) for name, _, status, _ in cells)
    expected = sorted((t["name"], "waived" if f.get("waived") else f["status"]) for t in targets for f in t["findings"])
    assert shown == expected
    assert all(text.upper().startswith(status.upper()) for _, _, status, text in cells)
    for name, href, _, _ in cells:
        assert href.startswith("#"), href
        target_id = href[1:]
        assert page.evaluate("id => document.getElementById(id) !== null", target_id), (
            f"{name}: {href} resolves to nothing"
        )
        # and the finding it lands on belongs to that target's section
        assert (
            page.evaluate("id => document.getElementById(id).closest('section.target').dataset.name", target_id) == name
        )

    # typing a target's name leaves only that target, in the matrix and below
    unique = next(n for n in names if sum(n in other for other in names) == 1)
    page.locator("#f-text").press_sequentially(unique)
    assert opened.visible_names(ROWS) == [unique]
    assert opened.visible_names(SECTIONS) == [unique]
    hidden = page.eval_on_selector_all(ROWS, "rows => rows.filter(r => r.hidden).map(r => r.dataset.name)")
    assert hidden == [n for n in names if n != unique]
    assert "1 of" in page.text_content("#f-count")

    # status "fail" shows exactly the failing targets of report.json
    page.click("#f-reset")
    assert opened.visible_names(ROWS) == names
    page.select_option("#f-status", "fail")
    failing = [t["name"] for t in targets if t["status"] == "fail"]
    assert failing, "the demo is built to have failing targets"
    assert opened.visible_names(ROWS) == failing
    assert opened.visible_names(SECTIONS) == failing

    # a filter nothing matches says so
    page.click("#f-reset")
    page.fill("#f-text", "no target is called this")
    assert opened.visible_names(ROWS) == []
    assert page.is_visible("#f-none")
    page.click("#f-reset")
    assert not page.is_visible("#f-none")

    opened.assert_clean()
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    if os.environ.get("MTLS_AUDIT_UPDATE_SCREENSHOT") == "1":
        page.set_viewport_size({"width": 1400, "height": 1900})
        page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(README_SCREENSHOT), full_page=False)


def test_demo_report_reads_without_javascript(open_page, demo_report):
    html_path, report = demo_report
    opened = open_page(html_path, java_script_enabled=False)
    page = opened.page
    names = [t["name"] for t in report["targets"]]
    assert not page.is_visible("#filters")  # the inert filter UI stays hidden
    assert not page.is_visible("#f-none")
    assert opened.visible_names(ROWS) == names
    assert opened.visible_names(SECTIONS) == names
    assert page.is_visible(f"{ROWS} td.cell a")
    assert opened.errors == []


# -- hostile input -------------------------------------------------------------------

SCRIPT = "<script>window.__pwned=1</script>"
ATTRIBUTE = '"><img src=x onerror="window.__pwned=1">'
SVG = "<svg/onload=alert(1)>"
ANSI = "\x1b[31m"
BAD_BYTE = b"caf\xff".decode("utf-8", "surrogateescape")  # a lone surrogate, as a non-UTF-8 name decodes


def _hostile_document() -> dict[str, Any]:
    subject = f"CN={SCRIPT},O={ATTRIBUTE}\nCN=forged {ANSI}red {BAD_BYTE}"
    finding = {
        "check": "san-match",
        "status": "fail",
        "severity": "high",
        "summary": f"no SAN matches: {SCRIPT} {ATTRIBUTE}\nsecond line {ANSI} {BAD_BYTE}",
        "remediation": f"Reissue `{SVG}` the certificate.",
        "evidence": {
            "names": [f"DNS:{SCRIPT}", "URI:javascript:alert(1)", ATTRIBUTE],
            "reason": f"{SVG}\n{ANSI}{BAD_BYTE}",
            ATTRIBUTE: {SCRIPT: [SVG, None, True]},
        },
        "commands": [
            {"label": SCRIPT, "command": f"openssl s_client -connect 192.0.2.1:443 -servername '{ATTRIBUTE}'"}
        ],
        "waived": True,
        "waiver": {
            "target": SCRIPT,
            "check": "san-match",
            "reason": ATTRIBUTE,
            "owner": SVG,
            "expires": "2099-01-01",
            "expired": False,
        },
        "baseline": "new",
    }
    target = {
        "name": f"evil {SCRIPT}",
        "address": "192.0.2.1:443",
        "server_name": ATTRIBUTE,
        "tags": [ATTRIBUTE, f"t{ANSI}{BAD_BYTE}"],
        "status": "fail",
        "error": None,
        "scanned_at": "2026-01-01T00:00:01+00:00",
        "accepted_versions": ["TLSv1.3"],
        "client_auth": [
            {
                "version": "TLSv1.3",
                "classification": "optional",
                "blocked_at": None,
                "certificate_request_seen": True,
                "detail": f"{SCRIPT}{ANSI}",
            }
        ],
        "certificates": [
            {
                "subject": subject,
                "issuer": f"CN={SVG}",
                "serial": "01",
                "not_before": "2025-01-01T00:00:00+00:00",
                "not_after": "2027-01-01T00:00:00+00:00",
                "subject_alternative_names": [f"DNS:{SCRIPT}", f"DNS:{ATTRIBUTE}", f"DNS:{ANSI}{BAD_BYTE}\nx"],
                "sha256": "d" * 64,
                "pem": f"-----BEGIN CERTIFICATE-----\n{SCRIPT}\n-----END CERTIFICATE-----\n",
            }
        ],
        "findings": [finding],
        "probes": [],
    }
    return {
        "schema_version": "1.1",
        "scan": {
            "started": "2026-01-01T00:00:00+00:00",
            "finished": None,
            "tool": "mtls-audit",
            "tool_version": "0.1.0",
            "inventory": SCRIPT,
            "options": {ATTRIBUTE: SCRIPT},
            "waivers": {
                "file": ATTRIBUTE,
                "expired": [
                    {"target": SCRIPT, "check": "x", "reason": SVG, "owner": ATTRIBUTE, "expires": "2020-01-01"}
                ],
                "unused": [
                    {"target": SCRIPT, "check": SVG, "reason": ATTRIBUTE, "owner": SCRIPT, "expires": "2099-01-01"}
                ],
            },
            "baseline": {"file": SCRIPT, "missing_targets": [ATTRIBUTE]},
        },
        "summary": {"targets": 1, "targets_by_status": {"fail": 1}, "findings_by_status": {"fail": 1}},
        "targets": [target],
    }


def _write_hostile(path: Path, monkeypatch: pytest.MonkeyPatch, form: str) -> Path:
    if form == "on-demand":
        monkeypatch.setattr("mtls_audit.reports.html.view.INLINE_DETAILS_UP_TO", 0)
    path = write_html(ReportDocument.from_dict(_hostile_document()), path)
    assert ("<noscript><details" in path.read_text(encoding="utf-8")) == (form == "on-demand")
    return path


@pytest.mark.parametrize("form", ["inline", "on-demand"])
@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "without-csp"])
def test_hostile_strings_stay_text(open_page, tmp_path, monkeypatch, bypass_csp, form):
    """Escaping alone must hold: with the CSP bypassed, nothing injected runs either;
    nor when the script makes the section from its <noscript> text."""
    path = _write_hostile(tmp_path / "hostile.html", monkeypatch, form)
    opened = open_page(path, bypass_csp=bypass_csp)
    page = opened.page
    if form == "on-demand":
        assert page.locator(SECTIONS).count() == 0
        page.click(f"{ROWS} td.target-col a")
        assert page.locator(SECTIONS).count() == 1 and page.is_visible(SECTIONS)

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert opened.dialogs == []
    assert opened.errors == []
    assert page.evaluate("document.querySelectorAll('img, svg, iframe, object, embed').length") == 0
    assert page.evaluate("document.scripts.length") == 1  # only the report's own filter script
    if not bypass_csp:
        assert opened.csp_violations() == []

    text = page.inner_text("body")
    for payload in (SCRIPT, ATTRIBUTE, SVG, "URI:javascript:alert(1)"):
        assert payload in text, payload
    assert "\\x1b[31m" in text and "\x1b" not in text  # ESC is shown as an escape, not passed on
    assert "caf\ufffd" in text  # the undecodable byte is a replacement character
    assert "\\nCN=forged" in text  # the newline in the subject is shown, not laid out
    assert "WAIVED" in page.inner_text("table.matrix") and "NEW" in page.inner_text("table.matrix")

    # data attributes carry the hostile text verbatim, and the filter matches on it as text
    row = page.locator(ROWS).first
    assert row.get_attribute("data-name") == f"evil {SCRIPT}"
    assert ATTRIBUTE in json.loads(row.get_attribute("data-tags"))
    page.fill("#f-text", ATTRIBUTE)
    assert page.is_visible(ROWS)
    page.fill("#f-text", SCRIPT + "x")
    assert not page.is_visible(ROWS)
    page.select_option("#f-tag", ATTRIBUTE)
    page.fill("#f-text", "")
    assert page.is_visible(ROWS)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert opened.errors == [] and opened.dialogs == []


def test_hostile_strings_stay_text_in_the_on_demand_form_without_javascript(open_page, tmp_path, monkeypatch):
    """With JavaScript off the browser itself parses the <noscript> sections: the
    escaping there is all that holds."""
    path = _write_hostile(tmp_path / "hostile.html", monkeypatch, "on-demand")
    opened = open_page(path, java_script_enabled=False)
    page = opened.page
    assert page.locator("#targets details.fold").count() == 1
    page.click(f"{ROWS} td.target-col a")  # the fragment opens the folded section
    assert page.is_visible("#target-1")
    assert page.evaluate("document.querySelectorAll('img, svg, iframe, object, embed').length") == 0
    assert page.evaluate("document.scripts.length") == 1
    text = page.inner_text("#target-1")
    for payload in (SCRIPT, ATTRIBUTE, SVG, "URI:javascript:alert(1)"):
        assert payload in text, payload
    assert "\\x1b[31m" in text and "\x1b" not in text
    assert "\\nCN=forged" in text
    assert opened.errors == [] and opened.dialogs == []
