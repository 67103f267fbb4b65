"""How does the HTML report hold up at 10,000 targets? Prints its figures.

Runs the demo once (`mtls-audit demo`, loopback only, about a second), loads its
report.json and replicates its twelve targets to N with distinct names, addresses,
server names, tags and statuses, writes the page with the real streaming writer,
then opens it in headless Chromium (/usr/bin/chromium through Playwright, as the
browser tests do) a few times and measures:

- the file size and the render time of the writer;
- the DOM element count once loaded;
- the load time: navigation start to the load event, and to first contentful paint;
- a filter change: typing a target's name, clearing it, picking a status and going
  back to "any"; each from just before the input event is dispatched until the page
  has been styled, laid out and painted again (the event handler runs, then a
  requestAnimationFrame, then a task after that frame);
- opening one target's details (a click on its matrix link, until painted).

    .venv/bin/python bench/html_at_scale.py                     # 10,000 targets
    .venv/bin/python bench/html_at_scale.py --targets 1000 10000 --repeat 5
    .venv/bin/python bench/html_at_scale.py --page some/report.html   # measure a page as it is

Other processes share this machine's two cores, so every figure is the median of
--repeat runs (each in a fresh browser context), with the spread alongside.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_ZONES = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")


def demo_report(directory: Path) -> Any:
    """The demo's report (a ``ReportDocument``), from one ``mtls-audit demo`` run."""
    from mtls_audit.reports.json_report import load_report

    output = directory / "demo"
    subprocess.run(
        [sys.executable, "-m", "mtls_audit.scanner.cli", "demo", "--output", str(output)],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return load_report(output / "report.json")


def replicated_targets(document: Any, count: int) -> Iterator[Any]:
    """``count`` targets made one at a time from the demo's, each with its own name,
    address, server name and a zone tag; statuses follow the demo's mix (pass, fail,
    warn) and every 97th target is one that could not be scanned (status error)."""
    from mtls_audit.scanner.model.report import TargetReport

    prototypes = [json.dumps(target.to_dict()) for target in document.targets]
    for number in range(count):
        record = json.loads(prototypes[number % len(prototypes)])
        name = f"{record['name']}-{number:05d}"
        host = f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
        record["name"] = name
        record["address"] = f"{host}:{8443 + number % 7}"
        record["server_name"] = f"{name}.svc.example.internal"
        record["tags"] = [*record["tags"], _ZONES[number % len(_ZONES)], f"team-{number % 40:02d}"]
        record["index"] = number
        if number % 97 == 96:
            record["status"] = "error"
            record["error"] = f"connect to {host}: connection refused"
            record["accepted_versions"] = []
            record["client_auth"] = []
            record["certificates"] = []
            record["findings"] = []
            record["probes"] = []
            record["identity_matrix"] = []
        yield TargetReport.from_dict(record)


def write_report(document: Any, count: int, path: Path) -> float:
    """Write the page for ``count`` replicated targets with the streaming writer; seconds taken."""
    from mtls_audit.reports.html.writer import HtmlReportWriter

    started = time.perf_counter()
    writer = HtmlReportWriter(path, schema_version=document.schema_version)
    writer.start(document.scan)
    for target in replicated_targets(document, count):
        writer.add(target)
    writer.finish(document.scan, document.summary)
    return time.perf_counter() - started


# Runs in the page: dispatch one change to a filter control and time it until the frame
# after it has been painted. Returns [handler ms, settled ms, rows shown].
_FILTER_CHANGE = """async ([selector, value]) => {
  const control = document.querySelector(selector);
  const settled = () => new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)));
  await settled();
  const start = performance.now();
  control.value = value;
  control.dispatchEvent(new Event(control.tagName === "SELECT" ? "change" : "input", {bubbles: true}));
  const handled = performance.now();
  await settled();
  const end = performance.now();
  const shown = Array.from(document.querySelectorAll(".matrix [data-name]"))
    .filter(el => el.getClientRects().length > 0).length;
  return [handled - start, end - start, shown];
}"""

# Opens the details of the target behind the n-th matrix link, timed to the painted frame.
_OPEN_DETAILS = """async (index) => {
  const settled = () => new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)));
  const link = Array.from(document.querySelectorAll(".matrix a[href^='#target-']"))
    .filter(a => /^#target-[0-9]+$/.test(a.getAttribute("href")))[index];
  if (!link) { return [null, null]; }
  await settled();
  const start = performance.now();
  link.click();
  await settled();
  const end = performance.now();
  const id = link.getAttribute("href").slice(1);
  const section = document.getElementById(id);
  const findings = section ? section.querySelectorAll(".finding").length : -1;
  return [end - start, findings];
}"""

_LOAD_FIGURES = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  return {
    load: nav.loadEventStart,
    dom_content_loaded: nav.domContentLoadedEventStart,
    first_contentful_paint: paint ? paint.startTime : null,
    elements: document.getElementsByTagName("*").length,
    nodes: countNodes(),
  };
  function countNodes() {
    const walker = document.createTreeWalker(document, NodeFilter.SHOW_ALL);
    let n = 1;
    while (walker.nextNode()) { n += 1; }
    return n;
  }
}"""


def measure_page(path: Path, repeat: int, probe_name: str) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, list[float]] = {}

    def record(name: str, value: float | None) -> None:
        if value is not None:
            figures.setdefault(name, []).append(value)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            for _ in range(repeat):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
                page.goto(path.resolve().as_uri(), wait_until="load", timeout=600_000)
                page.wait_for_timeout(300)  # let the first paint entries land
                loaded = page.evaluate(_LOAD_FIGURES)
                record("load ms", loaded["load"])
                record("DOMContentLoaded ms", loaded["dom_content_loaded"])
                record("first contentful paint ms", loaded["first_contentful_paint"])
                record("DOM elements", loaded["elements"])
                record("DOM nodes", loaded["nodes"])
                if page.query_selector("#f-text") is not None:
                    for label, selector, value in (
                        (f"filter: type {probe_name!r}", "#f-text", probe_name),
                        ("filter: clear the text", "#f-text", ""),
                        ("filter: status fail", "#f-status", "fail"),
                        ("filter: status any", "#f-status", ""),
                        ("filter: type 'eu-west' (a tag)", "#f-text", "eu-west"),
                        ("filter: clear again", "#f-text", ""),
                    ):
                        handler, settled, shown = page.evaluate(_FILTER_CHANGE, [selector, value])
                        record(f"{label} ms", settled)
                        record(f"{label} (handler only) ms", handler)
                        record(f"{label} rows shown", shown)
                opened, findings = page.evaluate(_OPEN_DETAILS, 5)
                record("open one target's details ms", opened)
                record("findings in the opened target", findings)
                if errors:
                    raise RuntimeError(f"page errors: {errors}")
                context.close()
        finally:
            browser.close()
    return figures


def print_figures(title: str, figures: dict[str, list[float]]) -> None:
    print(title)
    for name, values in figures.items():
        median = statistics.median(values)
        spread = f"  (min {min(values):,.0f}, max {max(values):,.0f}, n={len(values)})" if len(values) > 1 else ""
        print(f"  {name:<48} {median:>12,.0f}{spread}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[10_000], help="report sizes to measure")
    parser.add_argument("--repeat", type=int, default=5, help="page loads per size (medians are printed)")
    parser.add_argument("--page", type=Path, help="measure this existing page instead of generating one")
    parser.add_argument("--keep", type=Path, help="write the generated pages into this directory")
    arguments = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing (Debian's chromium package)")

    if arguments.page:
        figures = measure_page(arguments.page, arguments.repeat, "")
        figures["file MB"] = [arguments.page.stat().st_size / 1e6]
        print_figures(str(arguments.page), figures)
        return

    with tempfile.TemporaryDirectory(prefix="mtls-audit-html-bench-") as scratch:
        directory = Path(scratch)
        document = demo_report(directory)
        output = arguments.keep or directory
        output.mkdir(parents=True, exist_ok=True)
        for count in arguments.targets:
            path = output / f"report-{count}.html"
            seconds = write_report(document, count, path)
            middle = count // 2
            probe_name = f"{document.targets[middle % len(document.targets)].name}-{middle:05d}"
            figures = measure_page(path, arguments.repeat, probe_name)
            size = path.stat().st_size
            title = f"{count:,} targets: {size / 1e6:,.1f} MB, written in {seconds:,.1f} s ({path.name})"
            print_figures(title, figures)


if __name__ == "__main__":
    main()
