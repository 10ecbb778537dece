"""docs/playground.png, the README's picture of the playground, made with the browser tests' code.

    python -m tests.playground.screenshot [OUT]     (default docs/playground.png)

Starts the service on the shipped models, draws a 7 (reconstructed, encoded and scored), samples
class 7 from the stored mixture, walks from a seed to the drawing, hovers the latent map and sends
a point to the decoder, then saves the whole page at desktop width.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, sync_playwright

from devtools.live import start_server
from tests.playground.drive import REPO_ROOT, draw_seven, launch, open_page, settle

OUT = REPO_ROOT / "docs" / "playground.png"
VIEWPORT = {"width": 1600, "height": 1000}  # three panels a row beside the model card


def stage(page: Page) -> None:
    """Every panel showing something: a drawing and its score, a grid of one class, a walk to the
    drawing, a map point decoded."""
    settle(page)
    draw_seven(page)
    page.wait_for_selector("#draw[data-state=ready]")
    page.wait_for_selector("#draw-score[data-state=ready]")
    if page.locator("#sample-label-field").is_visible():  # a model with class priors
        page.select_option("#sample-label", "7")
        page.select_option("#sample-prior", "mixture")
        page.wait_for_function("() => document.querySelector('#sample-grid').alt.includes('class 7')")
    page.click("#endpoint-b .endpoint-use-drawing")
    page.wait_for_function("() => document.querySelector('#endpoint-b .endpoint-source').textContent === 'the drawing'")
    page.wait_for_selector("#interpolate[data-state=ready]")
    page.click("#interp-play")  # paused, so the picture does not depend on the moment
    page.locator("#interp-slider").fill("6")
    page.locator("#map-plot").click(position={"x": 90, "y": 120})
    page.wait_for_selector("#decoder[data-state=ready]")
    page.locator("#map-plot").hover(position={"x": 90, "y": 120})
    page.wait_for_function("() => document.querySelector('#map-coordinates').textContent !== ''")
    page.mouse.move(0, 0)
    page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")


def capture(page: Page, out: Path) -> Path:
    """Stages the page and writes a palette PNG of all of it (a UI picture needs no more colours)."""
    stage(page)
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True)))
    out.parent.mkdir(parents=True, exist_ok=True)
    shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    server = start_server()
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page, watch = open_page(browser, server.base_url, viewport=VIEWPORT)
            capture(page, out)
            browser.close()
    finally:
        server.stop()
    problems = watch.problems()
    if problems:
        print("the page reported:\n" + "\n".join(problems), file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
