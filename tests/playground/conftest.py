"""Fixtures for the playground's browser tests: one headless chromium per module, driving the real
service (`live_server`, the shipped models, from tests/conftest.py). `page` is a fresh page at
GET / whose test fails on any console error, page error, failed request or unexpected 4xx/5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.playground.drive import chromium_path, launch, open_page

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the service role's venv; scripts/setup.sh dev installs it
    sync_playwright = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        pytest.skip("playwright is not installed (requirements/dev.txt)")
    if chromium_path() is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium (scripts/setup.sh dev does)")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page_and_watch(browser, live_server) -> Iterator[tuple]:
    page, watch = open_page(browser, live_server.base_url)
    yield page, watch
    page.context.close()
    problems = watch.problems()
    assert not problems, "the page reported:\n" + "\n".join(problems)


@pytest.fixture
def page(page_and_watch):
    return page_and_watch[0]


@pytest.fixture
def watch(page_and_watch):
    return page_and_watch[1]
