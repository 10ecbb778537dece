"""The playground on a colour model with a spatial latent, so nothing in the page assumes MNIST:
a tiny RGB 12x16 model with a [2, 3, 4] latent (devtools.tiny_models), packaged by the real
`python -m service package` and served beside mnist."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devtools.live import MODELS_DIR, REPO_ROOT, start_server
from devtools.tiny_models import TinyVAE
from tests.playground.drive import draw_strokes, open_page, save_panels, settle

COLOUR_MODEL = TinyVAE(image_shape=(3, 12, 16), latent_shape=(2, 3, 4))


@pytest.fixture(scope="module")
def colour_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("playground-colour")
    encoder, decoder = COLOUR_MODEL.write(folder / "graphs")
    models = folder / "models"
    command = [sys.executable, "-m", "service", "package", "--encoder", str(encoder), "--decoder", str(decoder)]
    command += ["--name", "rgb", "--labels", "cat,dog", "--out", str(models / "rgb")]
    packaged = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert packaged.returncode == 0, packaged.stderr
    (models / "mnist").symlink_to(MODELS_DIR / "mnist")
    server = start_server({"VAE_DEFAULT_MODEL": "rgb"}, models)
    yield server
    server.stop()


def test_a_colour_model_is_drawn_in_colour_and_every_panel_handles_its_spatial_latent(browser, colour_server):
    page, watch = open_page(browser, colour_server.base_url)
    try:
        settle(page)
        assert page.input_value("#model-picker") == "rgb"
        assert "rgb (colour 12×16)" in page.locator("#model-picker option").all_inner_texts()
        card = page.inner_text("#card")
        assert "colour 12×16" in card and "[2, 3, 4]" in card and "cat, dog" in card
        # The canvas takes the model's aspect; a colour picker appears and its colour is drawn.
        assert page.evaluate(
            "[document.querySelector('#draw-canvas').width, document.querySelector('#draw-canvas').height]"
        ) == [280, 210]
        assert page.locator("#draw-colour").is_visible()
        page.fill("#draw-colour", "#e01010")
        draw_strokes(page, [[(0.2, 0.3), (0.8, 0.7)]])
        page.wait_for_selector("#draw[data-state=ready]")
        red = page.evaluate(
            """() => { const c = document.querySelector('#draw-canvas');
                const [r, g, b] = c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data;
                return [r, g, b]; }"""
        )
        assert red == [224, 16, 16]
        assert page.locator("#draw-latent rect").count() == 24
        # A packaged model has no stored projection: the map is made of 256 of its own samples,
        # encoded back, without classes.
        assert page.get_attribute("#map-plot", "data-source") == "samples"
        assert page.get_attribute("#map-plot", "data-points") == "256"
        assert any("n=256" in r.url and "model=rgb" in r.url for r in watch.calls("POST", "/sample"))
        assert not watch.calls("GET", "/models/rgb/projection")
        assert page.locator("#map-legend").is_hidden()
        assert "No stored projection" in page.inner_text("#map-source")
        # Frames and map points go to /decode as [N, 2, 3, 4] latents.
        latents = json.loads(watch.calls("POST", "/decode")[-1].post_data or "")["latents"]
        assert [len(latents[0]), len(latents[0][0]), len(latents[0][0][0])] == [2, 3, 4]
        # Labels exist, but the packaged model stores no priors: no class or prior control; its
        # drawing is scored (a bernoulli card), without a test-set table.
        assert page.locator("#sample-label-field").is_hidden() and page.locator("#sample-prior-field").is_hidden()
        assert "model=rgb" in watch.calls("POST", "/score")[-1].url
        page.wait_for_selector("#draw-score[data-state=ready]")
        assert page.inner_text("#draw-score-flag") == "no test-set table for this model"
        save_panels(page, "colour")
        page.select_option("#model-picker", "mnist")
        page.wait_for_selector("#card[data-model=mnist]")
        assert page.locator("#draw-colour").is_hidden()
        assert page.evaluate("document.querySelector('#draw-canvas').height") == 280
    finally:
        page.context.close()
    assert not watch.problems(), watch.problems()
