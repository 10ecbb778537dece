"""GET /models/{name}/projection: the latent map a card names (files.projection, verified by sha256
at start) is served as written; a model without one is a 404 in the service's error shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from devtools.live import MODELS_DIR, start_server
from devtools.tiny_models import TinyVAE
from service.config import Settings
from service.packaging import PackageOptions, package
from service.registry import ModelLoadError, load_model
from training.data import Dataset, Split
from training.projection import PROJECTION_FILE, write_projection

TINY = TinyVAE(image_shape=(3, 12, 16), latent_shape=(2, 3, 4))


def packaged(folder: Path, name: str, labels: list[str] | None = None) -> Path:
    """A model as `python -m service package` makes it: a card without training data."""
    encoder, decoder = TINY.write(folder / "graphs" / name)
    out = folder / "models" / name
    package(encoder, decoder, out, PackageOptions(name=name, labels=labels))
    return out


def tiny_dataset(classes: tuple[str, ...]) -> Dataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, *TINY.image_shape), dtype=np.uint8)
    labels = rng.integers(0, len(classes), 60)
    return Dataset("tiny", Split(images, labels), Split(images, labels), classes)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("projection")
    mapped = packaged(folder, "mapped", labels=["cat", "dog"])
    write_projection(mapped, tiny_dataset(("cat", "dog")), points=40)
    packaged(folder, "plain")
    return folder / "models"


@pytest.fixture(scope="module")
def server(model_dir):
    started = start_server({"VAE_DEFAULT_MODEL": "mapped"}, model_dir)
    with started.client() as http:
        yield http
    started.stop()


def test_a_model_whose_card_names_a_projection_serves_it_as_written(server, model_dir):
    response = server.get("/models/mapped/projection")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == (model_dir / "mapped" / PROJECTION_FILE).read_bytes()
    body = response.json()
    assert body["latent_shape"] == [2, 3, 4] and len(body["mean"]) == 24 and len(body["points"]) == 40
    assert body["labels"] == ["cat", "dog"] and set(body["point_labels"]) <= {0, 1}
    assert server.get("/models/mapped").json()["card"]["files"]["projection"]["path"] == PROJECTION_FILE


def test_a_model_without_a_projection_is_a_404_in_the_error_shape(server):
    response = server.get("/models/plain/projection")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and error["details"] == {"model": "plain"}
    assert "no projection" in error["message"] and "python -m training project" in error["message"]
    unknown = server.get("/models/nope/projection")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert server.get("/models/mapped/projection", params={"n": 1}).json()["error"]["code"] == "invalid_request"


def test_a_projection_that_does_not_match_its_card_stops_the_model_from_loading(tmp_path):
    folder = packaged(tmp_path, "tampered")
    write_projection(folder, tiny_dataset(("a", "b")), points=10)
    assert load_model(folder, Settings()).extra_files["projection"] == (folder / PROJECTION_FILE).resolve()
    path = folder / PROJECTION_FILE
    path.write_text(path.read_text().replace('"kind": "pca"', '"kind": "tsne"'))
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        load_model(folder, Settings())


def test_the_shipped_models_serve_their_projections_and_openapi_documents_the_route(app_client):
    for name in ("mnist", "fashion-mnist", "emoji"):
        response = app_client.get(f"/models/{name}/projection")
        assert response.status_code == 200, response.text
        assert response.json() == json.loads((MODELS_DIR / name / PROJECTION_FILE).read_text())
    openapi = app_client.get("/openapi.json").json()
    route = openapi["paths"]["/models/{name}/projection"]["get"]
    assert {"200", "404"} <= set(route["responses"])
    assert route["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Projection")
    assert {"mean", "components", "points", "labels"} <= set(
        openapi["components"]["schemas"]["Projection"]["properties"]
    )
