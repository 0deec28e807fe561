"""Headless Chromium (Debian's ``chromium`` package) for the report's browser test: load a file, take a
screenshot, dump the DOM, print to PDF, and record what it logged on its console and what it asked of the
network (Chromium's own net log).

Chromium's background services (component updates, sign-in) make requests of their own that no page asked
for; they have no initiator, so ``page_requests`` keeps only the requests a page made. Every host name
resolves to nothing (``--host-resolver-rules``), so even a page request would reach no server.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

TIMEOUT_S = 90
FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--enable-logging=stderr",
    "--v=0",
)
CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")
EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)
URL_ATTRIBUTES = frozenset({"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data"})
SAFE_SCHEMES = ("#", "about:")


def chromium() -> str | None:
    return shutil.which("chromium")


@dataclass
class Visit:
    dom: str
    console: list[str]
    page_requests: list[str]


def _run(binary: str, profile: Path, *args: str, timeout: int = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def page_requests(net_log: Path) -> list[str]:
    """URLs of the requests a page made (those with an initiator), from a ``--log-net-log`` file."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params: dict[str, Any] = event.get("params") or {}
        # a request of the browser's own services has no initiator ("not an origin"); a page's has one
        started = names.get(event["type"]) == "URL_REQUEST_START_JOB" and "url" in params
        if started and params.get("initiator") != "not an origin":
            urls.append(str(params["url"]))
    return urls


def visit(binary: str, page: Path, work: Path, *, screenshot: Path, size: tuple[int, int] = (1280, 2400)) -> Visit:
    """Load ``page`` twice (a screenshot, then the DOM), with its console and its network requests recorded."""
    work.mkdir(parents=True, exist_ok=True)
    url = page.resolve().as_uri()
    console: list[str] = []
    requests: list[str] = []
    shot = _run(
        binary,
        work / "profile-shot",
        f"--screenshot={screenshot}",
        f"--window-size={size[0]},{size[1]}",
        f"--log-net-log={work / 'net-shot.json'}",
        url,
    )
    dump = _run(binary, work / "profile-dom", "--dump-dom", f"--log-net-log={work / 'net-dom.json'}", url)
    for run, log in ((shot, "net-shot.json"), (dump, "net-dom.json")):
        assert run.returncode == 0, f"chromium exited {run.returncode}: {run.stderr[-2000:]}"
        console += [m.group(1) for line in run.stderr.splitlines() if (m := CONSOLE.search(line))]
        requests += page_requests(work / log)
    return Visit(dom=dump.stdout, console=console, page_requests=requests)


def print_pdf(binary: str, page: Path, pdf: Path, work: Path) -> bytes:
    run = _run(binary, work / "profile-pdf", f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.resolve().as_uri())
    assert run.returncode == 0, f"chromium exited {run.returncode}: {run.stderr[-2000:]}"
    return pdf.read_bytes()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.targets: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "data-target" and tag == "section" and value:
                self.targets.append(value)
            if name in URL_ATTRIBUTES and value and not value.startswith(SAFE_SCHEMES) and EXTERNAL.match(value):
                self.external.append(f"<{tag} {name}={value!r}>")
            if name == "style" and value and "url(" in value:
                self.external.append(f"<{tag} style={value!r}>")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data: str) -> None:
        if self._in_style and ("url(" in data or "@import" in data):
            self.styles.append(data)


def dom_links(dom: str) -> tuple[list[str], list[str]]:
    """(attributes or styles that point outside the page, the targets' sections in order)."""
    parser = _Links()
    parser.feed(dom)
    return parser.external + parser.styles, parser.targets


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
