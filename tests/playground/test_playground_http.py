"""How the service serves the playground (service/playground/routes.py): GET / with a strict
Content-Security-Policy, assets under a version that changes with their bytes (immutable), the HTML
revalidated (no-cache, ETag), gzip when asked for, and VAE_PLAYGROUND=false leaving the API alone."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from service.playground import routes
from service.playground.routes import STATIC_DIR, accepts_gzip, build_site, matches_etag

ASSET = re.compile(r'(?:src|href)="(/static/[0-9a-f]{12}/[\w.-]+)"')


@pytest.fixture(scope="module")
def client(live_server):
    with live_server.client() as client:
        yield client


def test_the_page_is_served_at_the_root_with_a_policy_that_allows_no_inline_code(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["img-src"] == "'self' data: blob:"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # No inline script or style for the policy to refuse, and nothing from another origin.
    html = page.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline <script>"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)


def test_every_asset_the_page_names_is_versioned_and_cached_as_immutable(client):
    page = client.get("/")
    assert page.headers["cache-control"] == "no-cache"
    assets = ASSET.findall(page.text)
    assert {Path(a).name for a in assets} >= {"app.js", "api.js", "style.css", "icon.svg"}
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (
        client.get(next(a for a in assets if a.endswith(".js"))).headers["content-type"]
        == "text/javascript; charset=utf-8"
    )


def test_the_version_is_a_hash_of_the_files_so_a_changed_file_gets_a_new_url(tmp_path):
    for path in STATIC_DIR.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    before = build_site(tmp_path).version
    (tmp_path / "app.js").write_text((tmp_path / "app.js").read_text() + "\n// changed\n")
    after = build_site(tmp_path)
    assert after.version != before and f"/static/{after.version}/app.js" in after.index.body.decode()


def test_the_html_is_revalidated_with_its_etag(client):
    first = client.get("/")
    again = client.get("/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/", headers={"If-None-Match": 'W/"other"'}).status_code == 200


def test_bodies_are_gzipped_for_clients_that_accept_gzip(client):
    url = next(a for a in ASSET.findall(client.get("/").text) if a.endswith("/app.js"))
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    packed = client.get(url, headers={"Accept-Encoding": "gzip, br"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) < len(plain.content)
    assert packed.content == plain.content  # httpx decodes gzip
    assert accepts_gzip("gzip") and accepts_gzip("deflate, *") and not accepts_gzip("gzip;q=0, br")
    assert gzip.decompress(routes.SITE.assets["app.js"].gzipped or b"") == routes.SITE.assets["app.js"].body


def test_an_asset_from_another_version_is_a_404_in_the_api_error_shape(client):
    response = client.get("/static/000000000000/app.js")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and routes.SITE.version in error["message"]
    assert client.get(f"/static/{routes.SITE.version}/nothing.js").status_code == 404


def test_the_playground_is_not_in_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)


def test_etags_compare_weakly():
    assert matches_etag('W/"abc"', 'W/"abc"') and matches_etag('"abc"', 'W/"abc"') and matches_etag("*", 'W/"x"')
    assert not matches_etag('W/"abd", W/"abe"', 'W/"abc"') and not matches_etag("", 'W/"abc"')


def test_vae_playground_false_serves_the_api_alone(server_factory):
    server = server_factory({"VAE_PLAYGROUND": "false"})
    with server.client() as client:
        page = client.get("/")
        assert page.status_code == 404 and page.json()["error"]["code"] == "not_found"
        assert client.get(f"/static/{routes.SITE.version}/app.js").status_code == 404
        assert client.get("/models").status_code == 200
