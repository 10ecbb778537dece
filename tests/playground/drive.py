"""Driving the playground in Debian's headless chromium through Playwright, for the tests and for
`python -m tests.playground.screenshot`: launching, watching every request and console message,
drawing with the mouse, waiting for panels and saving their screenshots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Response

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
# Playwright's own browser download cannot run here; Debian's chromium, without its background services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# git-ignored (runs/ is in .gitignore); PLAYGROUND_SCREENSHOTS moves it.
SCREENSHOTS = Path(os.environ.get("PLAYGROUND_SCREENSHOTS", REPO_ROOT / "runs" / "playground-screenshots"))
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
PANELS = ("draw", "sample", "interpolate", "map", "decoder", "card")
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def launch(playwright: Playwright) -> Browser:
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("no chromium: apt-get install -y chromium (scripts/setup.sh dev does)")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


@dataclass
class Watch:
    """Everything a page did: requests to the service, responses, console errors, page errors and
    failed requests. `problems()` lists what a test fails on, except statuses it `allow`s."""

    base_url: str
    requests: list[Request] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    allowed_statuses: set[int] = field(default_factory=set)

    def attach(self, page: Page) -> Watch:
        page.on("request", self._on_request)
        page.on("response", self._on_response)
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on(
            "requestfailed", lambda request: self.failed.append(f"{request.method} {request.url}: {request.failure}")
        )
        return self

    def _on_request(self, request: Request) -> None:
        if request.url.startswith(self.base_url):
            self.requests.append(request)

    def _on_response(self, response: Response) -> None:
        if response.url.startswith(self.base_url):
            self.responses.append(response)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def allow(self, *statuses: int) -> None:
        """Statuses a test provokes on purpose (the browser also logs each as a console error)."""
        self.allowed_statuses.update(statuses)

    def calls(self, method: str, path: str) -> list[Request]:
        """Requests to an API path (without its query), e.g. calls("POST", "/decode")."""
        prefix = self.base_url + path
        return [r for r in self.requests if r.method == method and r.url.split("?")[0] == prefix]

    def statuses(self, method: str, path: str) -> list[int]:
        prefix = self.base_url + path
        return [r.status for r in self.responses if r.request.method == method and r.url.split("?")[0] == prefix]

    def problems(self) -> list[str]:
        unexpected = [
            f"HTTP {r.status} for {r.request.method} {r.url}"
            for r in self.responses
            if r.status >= 400 and r.status not in self.allowed_statuses
        ]
        provoked = tuple(f"status of {status}" for status in self.allowed_statuses)
        console = [text for text in self.console_errors if not any(mark in text for mark in provoked)]
        return [*unexpected, *(f"console: {t}" for t in console), *(f"page: {t}" for t in self.page_errors)] + [
            f"failed: {f}" for f in self.failed
        ]


def open_page(
    browser: Browser,
    base_url: str,
    viewport: dict[str, int] = DESKTOP,
    prepare: Callable[[Page], None] | None = None,
) -> tuple[Page, Watch]:
    """A fresh page at GET /, watched from its first request, once the app has loaded the models.
    `prepare(page)` runs before it loads (to route requests)."""
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = Watch(base_url).attach(page)
    if prepare is not None:
        prepare(page)
    page.goto(base_url + "/")
    page.wait_for_selector("body[data-ready=true]")
    return page, watch


def settle(page: Page) -> None:
    """Waits until every panel has shown its first result: the grid, the walk and the map."""
    page.wait_for_selector("#sample[data-state=ready]")
    page.wait_for_selector("#interpolate[data-state=ready]")
    page.wait_for_selector("#map[data-state=ready]")


def draw_strokes(page: Page, strokes: Iterable[Iterable[tuple[float, float]]]) -> None:
    """Mouse strokes on the drawing canvas; points as fractions of its width and height."""
    canvas = page.locator("#draw-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None, "the canvas is not visible"
    for stroke in strokes:
        points = list(stroke)
        x, y = points[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=3)
        page.mouse.up()


# A "7": the top bar, then the stem.
SEVEN = [[(0.25, 0.22), (0.5, 0.2), (0.75, 0.22)], [(0.75, 0.22), (0.62, 0.5), (0.5, 0.8)]]


def draw_seven(page: Page) -> None:
    draw_strokes(page, SEVEN)


def save_panels(page: Page, tag: str, folder: Path = SCREENSHOTS) -> list[Path]:
    """Screenshots of each panel (and the whole page) as <folder>/<tag>-<panel>.png."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for panel in PANELS:
        path = folder / f"{tag}-{panel}.png"
        page.locator(f"#{panel}").screenshot(path=path)
        saved.append(path)
    whole = folder / f"{tag}-page.png"
    page.screenshot(path=whole, full_page=True)
    return [*saved, whole]
