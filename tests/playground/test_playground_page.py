"""The playground in a real browser (Debian's chromium, headless) against the real service with the
shipped models: each test drives one panel the way a person would and checks both what the page
shows and what reached the service. Any console error or unexpected 4xx/5xx fails the test."""

from __future__ import annotations

import base64
import io
import json
import re
import shlex
from decimal import ROUND_HALF_UP, Decimal

import httpx
import numpy as np
import pytest
from PIL import Image

from devtools.images import digit_png_bytes
from tests.playground.drive import PHONE, REPO_ROOT, draw_seven, open_page, save_panels, settle

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def card_nll(name: str) -> float:
    """The importance-sampled NLL the model's card reports, as the card panel shows it."""
    card = json.loads((REPO_ROOT / "models" / name / "model.json").read_text())
    return card["metrics"]["importance_sampled_nll_nats"]


def shown_grid(page) -> list[int]:
    """The sample grid's pixels as the page shows them (gray levels, read back through a canvas)."""
    page.wait_for_function("() => document.querySelector('#sample-grid').naturalWidth > 0")
    return page.evaluate(
        """() => {
            const img = document.querySelector('#sample-grid');
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(img, 0, 0);
            const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
            return Array.from({ length: rgba.length / 4 }, (_, i) => rgba[4 * i]);
        }"""
    )


def png_gray(data: bytes) -> list[int]:
    return list(Image.open(io.BytesIO(data)).convert("L").getdata())


def test_the_page_loads_every_panel_from_the_api_alone(page, watch):
    settle(page)
    assert watch.statuses("GET", "/models") == [200]
    assert watch.statuses("GET", "/openapi.json") == [200]
    assert page.locator("#model-picker option").all_inner_texts() == [
        "emoji (colour 64×64)",
        "fashion-mnist (grayscale 28×28)",
        "mnist (grayscale 28×28)",
    ]
    assert page.input_value("#model-picker") == "mnist"
    # Every request the page makes is to this origin: its own files or the documented API.
    api = {"/models", "/openapi.json", "/sample", "/decode", "/encode", "/reconstruct", "/interpolate"}
    api |= {"/models/mnist/projection"}
    for request in watch.requests:
        path = request.url[len(watch.base_url) :].split("?")[0]
        assert path == "/" or path.startswith("/static/") or path in api, request.url
    # The card panel shows the card's figures.
    card = page.inner_text("#card")
    assert "importance sampled nll nats" in card and js_number(card_nll("mnist")) in card
    # The service has /score: its figure waits for an image, and nothing is scored before one.
    assert page.locator("#draw-score").is_visible()
    assert page.inner_text("#draw-score-flag") == "draw or pick an image to score it"
    assert not watch.calls("POST", "/score")
    save_panels(page, "desktop")


def js_number(value: float, digits: int = 4) -> str:
    """A number as the page writes it (models.js formatValue: toPrecision(4), ties away from zero)."""
    exact = Decimal(value)
    step = Decimal(1).scaleb(exact.adjusted() - digits + 1)
    return js_decimal(exact.quantize(step, ROUND_HALF_UP))


def js_one_decimal(value: float) -> str:
    """A number to one decimal as the page writes it (toFixed(1), ties up): 99.6, 100."""
    return js_decimal(Decimal(value).quantize(Decimal("0.1"), ROUND_HALF_UP))


def js_decimal(rounded: Decimal) -> str:
    number = float(rounded)
    return str(int(number)) if number.is_integer() else repr(number)


def score_answer(watch) -> dict:
    """The newest /score answer the page received."""
    answers = [r for r in watch.responses if r.request.method == "POST" and "/score?" in r.url and r.ok]
    assert answers, "no /score answer"
    return answers[-1].json()


def score_figures(page) -> dict[str, str]:
    """The score figure's rows, term -> value (with its note)."""
    terms = page.locator("#draw-score-figures dt").all_inner_texts()
    values = page.locator("#draw-score-figures dd").all_inner_texts()
    return dict(zip(terms, values, strict=True))


def noise_png(seed: int = 0, size: int = 28) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "L").save(out, "PNG")
    return out.getvalue()


def test_a_drawing_on_mnist_is_scored_and_its_likelihood_and_flag_shown_in_words(page, watch):
    draw_seven(page)
    page.wait_for_selector("#draw[data-state=ready]")
    page.wait_for_selector("#draw-score[data-state=ready]")
    # One /score per stroke, the same multipart upload as /encode's.
    scores = watch.calls("POST", "/score")
    assert len(scores) == 2 and set(watch.statuses("POST", "/score")) == {200}
    assert "model=mnist" in scores[-1].url
    assert scores[-1].headers["content-type"].startswith("multipart/form-data")
    body = score_answer(watch)
    result = body["results"][0]
    assert body["table"] is not None and result["percentile"] is not None  # mnist ships its test-set table
    figures = score_figures(page)
    assert figures["neg ELBO"].startswith(f"{js_number(result['neg_elbo'])} nats")
    assert f"reconstruction {js_number(result['reconstruction'])} + KL {js_number(result['kl'])}" in figures["neg ELBO"]
    assert figures["NLL"] == f"{js_number(result['nll'])} nats importance sampled, k = {body['k']}"
    assert figures["bits/dim"] == js_number(result["bits_per_dim"])
    assert figures["test-set percentile"].endswith(f"of {body['table']['images']:,} test images' neg ELBO")
    assert figures["outlier score"].startswith(js_one_decimal(result["outlier_score"]))
    flag = page.inner_text("#draw-score-flag")
    if result["outlier"]:
        assert re.fullmatch(r"outlier: unlike the test set \(outlier score [\d.]+\)", flag), flag
    else:
        match = re.fullmatch(r"typical for this model \((\d+(?:\.\d)?)(?:st|nd|rd|th) percentile\)", flag)
        assert match, flag
        assert float(match.group(1)) == pytest.approx(result["percentile"], abs=0.5)
    assert page.get_attribute("#draw-score-flag", "data-verdict") == ("outlier" if result["outlier"] else "typical")
    # The result is announced (a polite live region, no longer busy), the spinner gone.
    assert page.get_attribute("#draw-score-result", "aria-live") == "polite"
    assert page.get_attribute("#draw-score-result", "aria-busy") == "false"
    assert page.locator("#draw-score .score-spinner").is_hidden()
    assert "/score?model=mnist" in page.text_content("#draw-curl")

    # Noise is nothing like a digit: flagged as an outlier, in words.
    page.set_input_files("#draw-file", files=[{"name": "noise.png", "mimeType": "image/png", "buffer": noise_png()}])
    page.wait_for_function("() => document.querySelector('#draw-curl').textContent.includes('noise.png')")
    page.wait_for_selector("#draw[data-state=ready]")
    noise = score_answer(watch)["results"][0]
    assert noise["filename"] == "noise.png" and noise["outlier"] is True
    assert page.inner_text("#draw-score-flag") == (
        f"outlier: unlike the test set (outlier score {js_one_decimal(noise['outlier_score'])})"
    )
    assert page.get_attribute("#draw-score-flag", "data-verdict") == "outlier"
    page.click("#draw-clear")
    assert page.inner_text("#draw-score-flag") == "draw or pick an image to score it"
    assert page.locator("#draw-score-figures dt").count() == 0


def test_a_busy_or_refused_score_is_said_in_words_and_the_reconstruction_still_shows(page, watch):
    watch.allow(429, 413)
    message = "the upload is 30000000 bytes; at most 20971520 (VAE_MAX_UPLOAD_BYTES)"
    seen = []

    def busy_then_too_large(route):
        seen.append(route.request.url)
        if len(seen) == 1:
            body = {"error": {"code": "queue_full", "message": "the inference queue is full; retry after 1 s"}}
            route.fulfill(status=429, headers={"Retry-After": "1"}, json=body)
        else:
            route.fulfill(status=413, json={"error": {"code": "payload_too_large", "message": message}})

    page.route("**/score?*", busy_then_too_large)
    page.set_input_files(
        "#draw-file", files=[{"name": "one.png", "mimeType": "image/png", "buffer": digit_png_bytes(1)}]
    )
    page.wait_for_function(
        "() => document.querySelector('#draw-score-status').textContent.startsWith('busy, retrying in 1.0 s')"
    )
    assert page.locator("#draw-score .score-spinner").is_visible()
    page.wait_for_selector("#draw-score[data-state=error]", timeout=10_000)
    assert page.inner_text("#draw-score-error") == f"image too large: {message}"
    assert page.get_attribute("#draw-score-error", "role") == "alert"
    assert page.locator("#draw-score .score-spinner").is_hidden()
    # The reconstruction and the latent are shown all the same; the panel itself has no error.
    page.wait_for_selector("#draw[data-state=ready]")
    assert page.get_attribute("#draw-output", "src").startswith("data:image/png;base64,")
    assert page.locator("#draw .error").is_hidden()
    assert len(seen) == 2


def test_a_drawn_digit_is_reconstructed_and_its_latent_shown_as_bars(page, watch):
    draw_seven(page)
    page.wait_for_selector("#draw[data-state=ready]")
    # One /reconstruct and one /encode per stroke, both answered.
    assert watch.statuses("POST", "/reconstruct") == [200, 200]
    assert len(watch.calls("POST", "/encode")) >= 2 and set(watch.statuses("POST", "/encode")) == {200}
    reconstruct = watch.calls("POST", "/reconstruct")[-1]
    assert "format=json" in reconstruct.url and "model=mnist" in reconstruct.url
    assert reconstruct.headers["content-type"].startswith("multipart/form-data")
    assert page.get_attribute("#draw-input", "src").startswith("data:image/png;base64,")
    assert page.get_attribute("#draw-output", "src").startswith("data:image/png;base64,")
    assert re.fullmatch(r"MSE \d\.\d+", page.inner_text("#draw-mse"))
    assert page.get_attribute("#draw-latent", "data-dims") == "32"
    assert page.locator("#draw-latent rect").count() == 32
    assert page.locator("#draw-latent line.whisker").count() == 32
    assert "curl -F 'file=@drawing.png'" in page.text_content("#draw-curl")

    page.click("#draw-undo")  # back to the bar alone: sent again
    page.wait_for_selector("#draw[data-state=ready]")
    assert len(watch.calls("POST", "/reconstruct")) == 3
    page.click("#draw-clear")
    assert page.get_attribute("#draw", "data-state") == "empty"
    assert page.get_attribute("#draw-output", "src") is None


def test_an_image_file_picked_or_dropped_is_reconstructed_instead_of_a_drawing(page, watch):
    page.set_input_files(
        "#draw-file", files=[{"name": "three.png", "mimeType": "image/png", "buffer": digit_png_bytes(3)}]
    )
    page.wait_for_selector("#draw[data-state=ready]")
    assert "file=@three.png" in page.text_content("#draw-curl")

    encoded = base64.b64encode(digit_png_bytes(5, size=200, white_background=True)).decode()
    transfer = page.evaluate_handle(
        """(encoded) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "five.png", { type: "image/png" }));
            return transfer;
        }""",
        encoded,
    )
    page.dispatch_event("#draw-drop", "drop", {"dataTransfer": transfer})
    page.wait_for_function("() => document.querySelector('#draw-curl').textContent.includes('five.png')")
    page.wait_for_selector("#draw[data-state=ready]")
    assert watch.statuses("POST", "/reconstruct") == [200, 200]


def test_a_file_the_service_cannot_read_is_reported_in_the_services_words(page, watch):
    watch.allow(415, 422)
    page.set_input_files("#draw-file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not a png"}])
    page.wait_for_selector("#draw[data-state=error]")
    words = page.inner_text("#draw .error")
    assert watch.statuses("POST", "/reconstruct")[0] in (415, 422)
    assert "image" in words.lower() and len(words) > 20, words
    assert page.locator("#draw .spinner").is_hidden()


def test_a_busy_service_is_retried_after_its_retry_after_and_then_answers(page, watch):
    watch.allow(429)
    refusals = []

    def busy_once(route):
        if not refusals:
            refusals.append(route.request.url)
            body = {"error": {"code": "queue_full", "message": "the inference queue is full; retry after 1 s"}}
            route.fulfill(status=429, headers={"Retry-After": "1"}, json=body)
        else:
            route.continue_()

    page.route("**/reconstruct?*", busy_once)
    page.set_input_files(
        "#draw-file", files=[{"name": "one.png", "mimeType": "image/png", "buffer": digit_png_bytes(1)}]
    )
    page.wait_for_function("() => document.querySelector('#draw .status').textContent.startsWith('busy, retrying')")
    page.wait_for_selector("#draw[data-state=ready]", timeout=10_000)
    assert len(refusals) == 1
    assert page.locator("#draw .error").is_hidden()


def test_an_oversized_image_is_reported_as_too_large(page, watch):
    watch.allow(413)
    message = "the upload is 30000000 bytes; at most 20971520 (VAE_MAX_UPLOAD_BYTES)"
    page.route(
        "**/reconstruct?*",
        lambda route: route.fulfill(status=413, json={"error": {"code": "payload_too_large", "message": message}}),
    )
    page.set_input_files(
        "#draw-file", files=[{"name": "big.png", "mimeType": "image/png", "buffer": digit_png_bytes(2)}]
    )
    page.wait_for_selector("#draw[data-state=error]")
    assert page.inner_text("#draw .error") == f"image too large: {message}"


def test_a_new_seed_changes_the_grid_and_copy_as_curl_gives_the_command_that_reproduces_it(page, watch):
    page.wait_for_selector("#sample[data-state=ready]")
    first = shown_grid(page)
    seed = page.input_value("#sample-seed")
    page.click("#sample-new-seed")
    page.wait_for_function(f"() => document.querySelector('#sample-grid').dataset.seed !== '{seed}'")
    new_seed = page.input_value("#sample-seed")
    grid = shown_grid(page)
    assert grid != first
    assert f"seed={new_seed}" in watch.calls("POST", "/sample")[-1].url

    page.click("#sample-copy")
    page.wait_for_function("() => document.querySelector('#sample .status').textContent.includes('copied')")
    command = page.evaluate("navigator.clipboard.readText()")
    assert command == page.inner_text("#sample-curl")
    words = shlex.split(command)
    assert words[:3] == ["curl", "-X", "POST"] and words[-2] == "-o"
    assert png_gray(httpx.post(words[3]).content) == grid  # the same grid, pixel for pixel

    page.fill("#sample-n", "4")  # typing re-samples after a pause
    page.wait_for_function("() => document.querySelector('#sample-curl').textContent.includes('n=4')")
    page.wait_for_function("() => document.querySelector('#sample-grid').alt.startsWith('4 samples')")


def test_a_class_and_the_mixture_prior_go_to_sample_and_into_its_curl_command(page, watch):
    page.wait_for_selector("#sample[data-state=ready]")
    card = httpx.get(f"{watch.base_url}/models/mnist").json()["card"]
    # mnist stores a mixture and class priors: both controls, the default named from its card.
    assert page.locator("#sample-prior-field").is_visible() and page.locator("#sample-label-field").is_visible()
    assert page.locator("#sample-prior option").all_inner_texts() == [
        f"default ({card['prior']['default']})",
        "standard N(0, I)",
        "mixture (stored)",
    ]
    assert page.locator("#sample-label option").all_inner_texts() == ["any", *[str(d) for d in range(10)]]
    # Neither is sent until chosen: the card's default prior applies.
    assert not any("prior=" in r.url or "label=" in r.url for r in watch.calls("POST", "/sample"))

    page.select_option("#sample-prior", "standard")
    page.wait_for_function("() => document.querySelector('#sample-curl').textContent.includes('prior=standard')")
    page.wait_for_function("() => document.querySelector('#sample-grid').alt.includes('standard prior')")
    # A class draws from its own mixture: standard is then not offered and becomes mixture.
    page.select_option("#sample-label", "7")
    assert page.input_value("#sample-prior") == "mixture"
    assert page.locator("#sample-prior option[value=standard]").is_disabled()
    page.select_option("#sample-prior", "mixture")
    page.wait_for_function("() => document.querySelector('#sample-grid').alt.includes('class 7, mixture prior')")
    sent = [r.url for r in watch.calls("POST", "/sample") if "label=" in r.url][-1]
    assert "label=7" in sent and "prior=mixture" in sent and "model=mnist" in sent
    assert set(watch.statuses("POST", "/sample")) == {200}
    command = page.inner_text("#sample-curl")
    assert "label=7" in command and "prior=mixture" in command
    words = shlex.split(command)
    assert png_gray(httpx.post(words[3]).content) == shown_grid(page)  # the same grid, pixel for pixel
    page.select_option("#sample-label", "")
    assert not page.locator("#sample-prior option[value=standard]").is_disabled()


def test_on_emoji_there_are_no_class_or_prior_controls_and_the_score_has_no_test_set_table(page, watch):
    settle(page)
    page.select_option("#model-picker", "emoji")
    page.wait_for_selector("#card[data-model=emoji]")
    page.wait_for_function("() => document.querySelector('#sample-grid').alt.includes('emoji')")
    # emoji's card has labels but no stored mixture or class priors.
    assert page.locator("#sample-label-field").is_hidden() and page.locator("#sample-prior-field").is_hidden()
    emoji_samples = [r.url for r in watch.calls("POST", "/sample") if "model=emoji" in r.url]
    assert emoji_samples and not any("prior=" in url or "label=" in url for url in emoji_samples)
    assert "prior=" not in page.inner_text("#sample-curl")
    draw_seven(page)
    page.wait_for_selector("#draw[data-state=ready]")
    page.wait_for_selector("#draw-score[data-state=ready]")
    assert "model=emoji" in watch.calls("POST", "/score")[-1].url
    result = score_answer(watch)["results"][0]
    assert result["percentile"] is None and result["outlier"] is None
    assert page.inner_text("#draw-score-flag") == "no test-set table for this model"
    figures = score_figures(page)
    assert figures["neg ELBO"].startswith(f"{js_number(result['neg_elbo'])} nats")
    assert figures["test-set percentile"].startswith("none")
    assert "outlier score" not in figures


def test_an_interpolation_between_two_seeds_is_one_interpolate_request(page, watch):
    settle(page)
    is_walk = lambda response: response.url.startswith(watch.base_url + "/interpolate")  # noqa: E731
    page.fill("#endpoint-a .endpoint-seed", "3")
    with page.expect_response(is_walk):
        page.click("#endpoint-a .endpoint-use-seed")
    assert page.inner_text("#endpoint-a .endpoint-source") == "seed 3"
    walks_before = len(watch.calls("POST", "/interpolate"))
    with page.expect_response(is_walk) as walked:
        page.fill("#interp-steps", "8")
        page.press("#interp-steps", "Tab")  # a change of frames walks again
    page.wait_for_selector("#interpolate[data-frames='8']")
    assert len(watch.calls("POST", "/interpolate")) == walks_before + 1
    request = walked.value.request
    assert "steps=8" in request.url and "method=linear" in request.url and "format=json" in request.url
    endpoints = json.loads(request.post_data or "")["latents"]
    seed3 = httpx.post(f"{watch.base_url}/sample", params={"n": 1, "seed": 3, "format": "json"}).json()["latents"][0]
    assert len(endpoints) == 2 and endpoints[0] == pytest.approx(seed3, abs=1e-5)
    assert page.locator("#interp-strip img").count() == 8
    assert "/interpolate?steps=8" in (page.text_content("#interp-curl") or "")
    # The service's methods, from its schema.
    assert page.locator("#interp-method option").all_inner_texts() == ["linear", "slerp"]
    with page.expect_response(is_walk) as walked:
        page.select_option("#interp-method", "slerp")
    assert "method=slerp" in walked.value.url
    page.wait_for_selector("#interpolate[data-frames='8']")

    page.click("#interp-play")  # it was playing; now paused
    assert page.get_attribute("#interp-play", "aria-pressed") == "false"
    page.locator("#interp-slider").fill("5")
    assert page.inner_text("#interp-position") == "frame 6 / 8, t = 0.71"
    assert page.locator("#interp-strip li.is-current").count() == 1

    draw_seven(page)  # a drawing as endpoint B
    page.wait_for_selector("#draw[data-state=ready]")
    with page.expect_response(is_walk) as walked:
        page.click("#endpoint-b .endpoint-use-drawing")
    assert walked.value.ok
    assert page.inner_text("#endpoint-b .endpoint-source") == "the drawing"
    page.wait_for_function("() => document.querySelectorAll('#interp-strip img').length === 8")
    save_panels(page, "desktop-walk")


def without_interpolate(page) -> None:
    """The page on a service that has no /interpolate yet: its schema, less that path."""

    def schema_without_it(route):
        schema = route.fetch().json()
        del schema["paths"]["/interpolate"]
        route.fulfill(json=schema)

    page.route("**/openapi.json", schema_without_it)


def test_without_interpolate_the_walk_is_computed_here_and_every_frame_decoded_in_one_request(browser, live_server):
    page, watch = open_page(browser, live_server.base_url, prepare=without_interpolate)
    try:
        settle(page)
        assert not watch.calls("POST", "/interpolate")
        assert page.locator("#interp-method-field").is_hidden()
        is_decode = lambda response: response.url.startswith(watch.base_url + "/decode")  # noqa: E731
        with page.expect_response(is_decode) as walked:
            page.fill("#interp-steps", "5")
            page.press("#interp-steps", "Tab")
        page.wait_for_selector("#interpolate[data-frames='5']")
        frames = json.loads(walked.value.request.post_data or "")["latents"]
        assert len(frames) == 5 and all(len(z) == 32 for z in frames)
        seeds = [
            httpx.post(f"{watch.base_url}/sample", params={"n": 1, "seed": s, "format": "json"}).json()["latents"][0]
            for s in (1, 2)
        ]
        assert frames[0] == pytest.approx(seeds[0], abs=1e-5) and frames[-1] == pytest.approx(seeds[1], abs=1e-5)
        middle = [(a + b) / 2 for a, b in zip(*seeds, strict=True)]
        assert frames[2] == pytest.approx(middle, abs=2e-5)  # a straight line
    finally:
        page.context.close()
    assert not watch.problems(), watch.problems()


def stored_projection(watch, name: str) -> dict:
    return httpx.get(f"{watch.base_url}/models/{name}/projection").json()


def plot_position(page, projection: dict, index: int) -> dict[str, float]:
    """Where the page draws stored point `index`: its extent with an 8% margin (latent.js extent)."""
    us, vs = zip(*projection["points"], strict=True)
    (u0, u1), (v0, v1) = [(min(a) - (max(a) - min(a)) * 0.08, max(a) + (max(a) - min(a)) * 0.08) for a in (us, vs)]
    u, v = projection["points"][index]
    box = page.locator("#map-plot").bounding_box()
    return {"x": (u - u0) / (u1 - u0) * box["width"], "y": (1 - (v - v0) / (v1 - v0)) * box["height"]}


def test_the_latent_map_draws_the_stored_test_set_points_by_class_and_a_hover_decodes_that_point(page, watch):
    settle(page)
    projection = stored_projection(watch, "mnist")
    # The map is the stored projection: one GET, no sampling or encoding of its own.
    assert watch.statuses("GET", "/models/mnist/projection") == [200]
    assert not any("n=256" in r.url for r in watch.calls("POST", "/sample"))
    assert not watch.calls("POST", "/encode")
    assert page.get_attribute("#map-plot", "data-source") == "projection"
    assert page.get_attribute("#map-plot", "data-points") == "2000"
    assert page.locator("#map-plot circle.point").count() == 2000
    # Each point has its class's colour; the legend names the classes with those colours.
    classes = page.evaluate("() => [...document.querySelectorAll('#map-plot circle.point')].map((c) => c.classList[1])")
    assert classes == [f"class-{label}" for label in projection["point_labels"]]
    fills = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#map-plot circle.point')]
            .map((c) => [c.classList[1], getComputedStyle(c).fill]))"""
    )
    assert len(set(fills.values())) == 10, fills
    assert page.locator("#map-legend li").all_inner_texts() == [str(d) for d in range(10)]
    swatches = page.evaluate(
        "() => [...document.querySelectorAll('#map-legend .swatch')].map((s) => getComputedStyle(s).backgroundColor)"
    )
    assert swatches == [fills[f"class-{d}"] for d in range(10)]
    assert "2,000 of the 10,000 test images" in page.inner_text("#map-source")
    assert re.fullmatch(
        r"pc1 explains \d+\.\d% and pc2 \d+\.\d% of the test means' variance", page.inner_text("#map-axes")
    )

    # Hovering a stored point decodes mean + u * pc1 + v * pc2 there, and names that point's class
    # (the point farthest from any other, so that the pointer is nearest to it).
    points = np.array(projection["points"])
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(len(points)) * 1e9
    index = int(distances.min(axis=1).argmax())
    before = page.get_attribute("#map-preview", "src")
    page.locator("#map-plot").hover(position=plot_position(page, projection, index))
    page.wait_for_function(f"() => document.querySelector('#map-preview').getAttribute('src') !== {json.dumps(before)}")
    u, v = (float(page.get_attribute("#map-coordinates", f"data-{axis}")) for axis in "uv")
    assert (u, v) == pytest.approx(projection["points"][index], abs=0.1)
    (sent,) = json.loads(watch.calls("POST", "/decode")[-1].post_data or "")["latents"]
    mean, (pc1, pc2) = projection["mean"], projection["components"]
    assert sent == pytest.approx([m + u * a + v * b for m, a, b in zip(mean, pc1, pc2, strict=True)], abs=1e-6)
    label = projection["labels"][projection["point_labels"][index]]
    assert page.inner_text("#map-coordinates").endswith(f"nearest test image: {label}")

    page.locator("#map-plot").click(position={"x": 200, "y": 220})
    page.wait_for_selector("#decoder[data-state=ready]")
    assert page.get_attribute("#decoder-image", "src").startswith("data:image/png;base64,")
    assert page.inner_text("#decoder-caption").startswith("map point u ")
    assert page.locator("#decoder-latent rect").count() == 32
    page.click("#decoder-to-a")
    page.wait_for_function(
        "() => document.querySelector('#endpoint-a .endpoint-source').textContent.startsWith('map point')"
    )


def test_picking_fashion_mnist_moves_every_panel_and_the_card_to_that_model(page, watch):
    settle(page)
    page.select_option("#model-picker", "fashion-mnist")
    page.wait_for_selector("#card[data-model=fashion-mnist]")
    page.wait_for_function("() => document.querySelector('#sample-grid').alt.includes('fashion-mnist')")
    page.wait_for_selector("#map[data-state=ready]")
    page.wait_for_selector("#interpolate[data-state=ready]")
    assert "model=fashion-mnist" in page.url
    assert "fashion-mnist" in page.inner_text("#card")
    assert js_number(card_nll("fashion-mnist")) in page.inner_text("#card")  # its importance-sampled NLL, from its card
    for path in ("/sample", "/decode"):
        assert any("model=fashion-mnist" in r.url for r in watch.calls("POST", path)), path
    assert watch.statuses("GET", "/models/fashion-mnist/projection") == [200]
    assert page.locator("#map-legend li").first.inner_text() == "T-shirt/top"
    draw_seven(page)
    page.wait_for_selector("#draw[data-state=ready]")
    assert "model=fashion-mnist" in watch.calls("POST", "/reconstruct")[-1].url
    assert "model=fashion-mnist" in watch.calls("POST", "/encode")[-1].url


def test_at_phone_width_nothing_scrolls_sideways(browser, live_server):
    page, watch = open_page(browser, live_server.base_url, viewport=PHONE)
    try:
        settle(page)
        draw_seven(page)
        page.wait_for_selector("#draw[data-state=ready]")
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1] == PHONE["width"], widths
        too_wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
                .map((e) => e.id || e.className || e.tagName)"""
        )
        assert not too_wide
        save_panels(page, "phone")
    finally:
        page.context.close()
    assert not watch.problems(), watch.problems()


def test_every_control_is_reachable_with_the_tab_key_and_shows_its_focus(page, watch):
    settle(page)
    controls = page.evaluate(
        """() => [...document.querySelectorAll('a[href], button, input, select, summary, [tabindex="0"]')]
            .filter((e) => !e.disabled && e.getClientRects().length > 0)
            .map((e, i) => { e.dataset.tabProbe = String(i); return e.id || e.className || e.textContent.trim(); })"""
    )
    reached = {}
    for _ in range(len(controls) + 5):
        page.keyboard.press("Tab")
        probe, outline = page.evaluate(
            """() => { const e = document.activeElement, style = getComputedStyle(e);
                return [e.dataset.tabProbe ?? e.tagName, `${style.outlineStyle} ${style.outlineWidth}`]; }"""
        )
        if probe != "BODY":  # past the last control
            reached[probe] = outline
    missing = [name for i, name in enumerate(controls) if str(i) not in reached]
    assert not missing, missing
    assert set(reached.values()) == {"solid 3px"}, reached  # :focus-visible on every one

    # The map works from the keyboard too: arrows move its cursor, Enter decodes the point.
    page.focus("#map-plot")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowUp")
    page.keyboard.press("Enter")
    page.wait_for_selector("#decoder[data-state=ready]")
