"""The evidence report in a real browser (headless Chromium from Debian's ``chromium`` package; ``make install``
installs it): it renders without a console message, shows every target, prints, and asks nothing of the
network. A control page proves each check can fail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser import chromium, dom_links, png_size, print_pdf, visit
from report_world import EvidencePages

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        chromium() is None,
        reason="chromium is not installed (Debian: apt-get install -y chromium; `make install` does it)",
    ),
]

CONTROL_PAGE = """<!DOCTYPE html><html><head><title>control</title></head><body>
<section data-target="x"><img src="http://example.invalid/pixel.png" alt=""></section>
<script>console.error("control error")</script></body></html>"""


def test_the_report_renders_in_chromium_with_every_target_no_console_message_and_no_request(
    evidence_pages: EvidencePages, tmp_path: Path
) -> None:
    binary = chromium()
    assert binary is not None
    screenshot = tmp_path / "evidence.png"

    seen = visit(binary, evidence_pages.html, tmp_path / "chromium", screenshot=screenshot)

    external, sections = dom_links(seen.dom)
    assert seen.console == []
    assert seen.page_requests == []
    assert external == []
    assert sections == [t["target"] for t in evidence_pages.doc()["targets"]]
    assert re.search(r"<title>Backup evidence report: evidence,", seen.dom)
    assert png_size(screenshot) == (1280, 2400)
    assert screenshot.stat().st_size > 50_000  # a page with content, not a blank canvas
    print(f"screenshot: {screenshot}")  # noqa: T201 - for a person to look at (pytest -s)


def test_the_report_prints_to_a_pdf(evidence_pages: EvidencePages, tmp_path: Path) -> None:
    binary = chromium()
    assert binary is not None

    pdf = print_pdf(binary, evidence_pages.html, tmp_path / "evidence.pdf", tmp_path / "chromium")

    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2  # the summary and the targets' sections


def test_the_checks_see_a_console_error_a_request_and_an_external_url_on_a_control_page(tmp_path: Path) -> None:
    binary = chromium()
    assert binary is not None
    page = tmp_path / "control.html"
    page.write_text(CONTROL_PAGE, encoding="utf-8")

    seen = visit(binary, page, tmp_path / "chromium", screenshot=tmp_path / "control.png", size=(400, 300))

    external, sections = dom_links(seen.dom)
    assert any("control error" in message for message in seen.console)
    assert any(url.startswith("http://example.invalid/") for url in seen.page_requests)
    assert external == ["<img src='http://example.invalid/pixel.png'>"]
    assert sections == ["x"]
