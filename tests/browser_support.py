"""Headless Chromium for tests, through Playwright with the system browser.

Playwright's own browser download is not used (this machine reaches no CDN); the
Debian ``chromium`` package is. Without it the tests skip, unless
MTLS_AUDIT_REQUIRE_SERVERS=1 (as CI sets), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Records CSP violations the page reports about itself; injected by the browser before
# any page script, so the page's own CSP does not apply to it.
CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("MTLS_AUDIT_REQUIRE_SERVERS") == "1":
        pytest.fail(f"MTLS_AUDIT_REQUIRE_SERVERS=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (install Debian's chromium package to run the browser tests)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OpenedPage:
    page: Any
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        reported = self.page.evaluate("window.__cspViolations || []")
        logged = [text for _, text in self.console if "Content Security Policy" in text]
        return reported + logged

    def assert_clean(self) -> None:
        assert self.errors == [], f"uncaught page errors: {self.errors}"
        assert [text for kind, text in self.console if kind == "error"] == []
        assert self.csp_violations() == []
        assert self.dialogs == []

    def visible_names(self, selector: str) -> list[str]:
        return self.page.eval_on_selector_all(
            selector, "els => els.filter(el => el.offsetParent !== null).map(el => el.dataset.name)"
        )


@pytest.fixture
def open_page(browser) -> Iterator[Any]:
    contexts = []

    def open_(path: Path, **context_options: Any) -> OpenedPage:
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, **context_options)
        contexts.append(context)
        page = context.new_page()
        opened = OpenedPage(page)
        page.on("console", lambda message: opened.console.append((message.type, message.text)))
        page.on("pageerror", lambda error: opened.errors.append(str(error)))

        def on_dialog(dialog: Any) -> None:
            opened.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        if context_options.get("java_script_enabled", True):
            page.add_init_script(CSP_PROBE)
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        return opened

    yield open_
    for context in contexts:
        context.close()
