"""service/routing.py: a LeanRoute answers exactly as FastAPI's APIRoute does for the same typed
signature (values, validation errors, OpenAPI), calls each dependency once, and refuses at build
time what it does not support."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from service import routing
from service.handlers import install_error_handlers
from service.routing import LeanRoute, UnsupportedRoute

calls: list[str] = []


class Params(BaseModel):
    n: int = Field(3, ge=1, le=10)
    mode: Literal["a", "b"] | None = None


async def shared(request: Request) -> str:
    calls.append("shared")
    return request.url.path


async def named(base: Annotated[str, Depends(shared)], name: Annotated[str | None, Query(max_length=5)] = None) -> str:
    return f"{base}:{name}"


async def endpoint(
    params: Annotated[Params, Query()],
    label: Annotated[str, Depends(named)],
    again: Annotated[str, Depends(shared)],
    accept: Annotated[str | None, Header()] = None,
    x_trace_id: Annotated[int | None, Header()] = None,
) -> JSONResponse:
    return JSONResponse(
        {"n": params.n, "mode": params.mode, "label": label, "again": again, "accept": accept, "trace": x_trace_id}
    )


def build(route_class) -> TestClient:
    router = APIRouter(route_class=route_class)
    router.add_api_route("/thing", endpoint, methods=["POST"])
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    return TestClient(app)


REQUESTS = [
    ({}, {}),
    ({"n": "7", "mode": "b", "name": "ab"}, {"Accept": "text/plain", "X-Trace-Id": "12"}),
    ({"n": "1", "n2": "x"}, {}),
    ({"n": ["2", "5"]}, {}),  # a repeated parameter: the last value counts
    ({"n": "0"}, {}),
    ({"n": "many", "mode": "c"}, {}),
    ({"name": "toolong"}, {"X-Trace-Id": "not a number"}),
]


@pytest.mark.parametrize("params, headers", REQUESTS)
def test_a_lean_route_answers_as_fastapi_does(params, headers):
    plain, lean = build(APIRoute), build(LeanRoute)
    expected = plain.post("/thing", params=params, headers=headers)
    got = lean.post("/thing", params=params, headers=headers)
    assert (got.status_code, got.json()) == (expected.status_code, expected.json())


def test_remembered_query_and_header_results_answer_as_the_first_validation_did():
    plain, lean = build(APIRoute), build(LeanRoute)
    for _ in range(3):  # the second and third of each come from the remembered results
        for params, headers in REQUESTS:
            expected = plain.post("/thing", params=params, headers=headers)
            got = lean.post("/thing", params=params, headers=headers)
            assert (got.status_code, got.json()) == (expected.status_code, expected.json())
    repeated = [("accept", "text/a"), ("accept", "text/b")]  # the first of a repeated header counts
    assert (
        lean.post("/thing", headers=repeated).json()["accept"]
        == plain.post("/thing", headers=repeated).json()["accept"]
    )


def test_remembered_results_stay_bounded():
    router = APIRouter(route_class=LeanRoute)
    router.add_api_route("/thing", endpoint, methods=["POST"])
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    client = TestClient(app)
    for n in range(routing.SEEN_LIMIT + 50):
        assert client.post("/thing", params={"n": str(1 + n % 9), "v": str(n)}).status_code == 200

    def every(plan):
        yield from plan.params
        for _, sub in plan.dependencies:
            yield from every(sub)

    sizes = [len(params.seen) for params in every(router.routes[0].plan)]
    assert 0 < max(sizes) <= routing.SEEN_LIMIT  # 562 distinct query strings were sent


def test_the_openapi_schema_is_fastapis_own():
    assert build(LeanRoute).get("/openapi.json").json() == build(APIRoute).get("/openapi.json").json()


def test_each_dependency_runs_once_per_request():
    calls.clear()
    assert build(LeanRoute).post("/thing").status_code == 200
    assert calls == ["shared"]


async def with_path(item: Annotated[int, Path(ge=0)]) -> JSONResponse:
    return JSONResponse({"item": item})


def sync_dependency() -> int:
    return 1


async def with_sync(value: Annotated[int, Depends(sync_dependency)]) -> JSONResponse:
    return JSONResponse({})


def test_unsupported_signatures_are_refused_when_the_app_is_built():
    router = APIRouter(route_class=LeanRoute)
    with pytest.raises(UnsupportedRoute, match="async functions only"):
        router.add_api_route("/sync", with_sync, methods=["GET"])


@pytest.mark.parametrize("item", ["7", "x", "-1"])
def test_path_parameters_are_validated_as_fastapi_does(item):
    answers = []
    for route_class in (APIRoute, LeanRoute):
        router = APIRouter(route_class=route_class)
        router.add_api_route("/items/{item}", with_path, methods=["GET"])
        app = FastAPI()
        install_error_handlers(app)
        app.include_router(router)
        response = TestClient(app).get(f"/items/{item}")
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
