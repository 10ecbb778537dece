"""LeanRoute: typed FastAPI routes whose parameters are resolved by a small resolver of our own.

FastAPI writes the OpenAPI schema from a route's signature, and that stays as it is. At request
time FastAPI's general resolver re-inspects every parameter's annotation and walks every
dependency, which costs the service's tiny inference requests more than their own work. A
LeanRoute compiles the same signature once, at start-up, into a plan:

- each dependant's scalar query and header parameters become one pydantic model, validated in
  one call (a parameter that is itself a pydantic model is validated as that model);
- `Depends` callables are awaited in order, each once per request (FastAPI's `use_cache`);
- errors become the RequestValidationError FastAPI would raise, with the same `loc`, so the
  answers are the same (service/handlers.py).

It supports what the inference routes use (Request, query and header parameters, async
dependencies without yield) and refuses, when the app is built, a route that needs more (path,
body or cookie parameters, sync or yield dependencies, security scopes): those stay plain APIRoutes.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from starlette.requests import Request
from starlette.responses import Response


class UnsupportedRoute(TypeError):
    """A LeanRoute whose signature needs FastAPI's general resolver."""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


@dataclass
class _Params:
    """One dependant's query or header parameters, validated by one model call."""

    where: str  # "query" or "header"
    model: type[BaseModel]
    names: dict[str, str]  # argument name -> the model field holding it
    whole: str | None = None  # argument that receives the validated model itself
    public: dict[str, str] = field(default_factory=dict)  # model alias -> the name FastAPI reports

    def read(self, source: Mapping[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        try:
            validated = self.model.model_validate(source)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            return {}, [{**e, "loc": (self.where, *self._public(e["loc"]))} for e in errors]
        if self.whole is not None:
            return {self.whole: validated}, []
        return {argument: getattr(validated, name) for argument, name in self.names.items()}, []

    def _public(self, loc: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.public.get(loc[0], loc[0]), *loc[1:]) if loc else loc


@dataclass
class _Plan:
    call: Callable[..., Awaitable[Any]]
    request_name: str | None = None
    params: list[_Params] = field(default_factory=list)
    dependencies: list[tuple[str | None, _Plan]] = field(default_factory=list)

    async def solve(self, request: Request, cache: dict[Any, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The keyword arguments for `call`, and any validation errors (then `call` must not run)."""
        values: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for name, plan in self.dependencies:
            if plan.call in cache:
                result = cache[plan.call]
            else:
                arguments, found = await plan.solve(request, cache)
                if found:
                    errors.extend(found)
                    continue
                result = cache[plan.call] = await plan.call(**arguments)
            if name is not None:
                values[name] = result
        if self.request_name is not None:
            values[self.request_name] = request
        for params in self.params:
            source = request.query_params if params.where == "query" else _headers(request)
            found_values, found = params.read(source)
            values.update(found_values)
            errors.extend(found)
        return values, errors


def _headers(request: Request) -> dict[str, str]:
    return {key.replace("-", "_"): value for key, value in request.headers.items()}


def _compile_params(dependant: Dependant, where: str) -> _Params | None:
    fields = dependant.query_params if where == "query" else dependant.header_params
    if not fields:
        return None
    if where == "query" and len(fields) == 1 and (model := _model_of(fields[0].field_info.annotation)):
        return _Params(where, model, {}, whole=fields[0].name)
    definitions: dict[str, Any] = {}
    names: dict[str, str] = {}
    public: dict[str, str] = {}
    for model_field in fields:
        if _model_of(model_field.field_info.annotation):
            raise UnsupportedRoute(f"{dependant.call}: a {where} model beside other {where} parameters")
        alias = model_field.alias
        if where == "header":
            # FastAPI reads header `x_trace_id` from X-Trace-Id and reports it as x-trace-id.
            public[alias.replace("-", "_").lower()] = alias.replace("_", "-")
            alias = alias.replace("-", "_").lower()
        info = copy.copy(model_field.field_info)  # FastAPI's own stays as it is, for the schema
        info.alias = info.validation_alias = alias
        definitions[model_field.name] = (info.annotation, info)
        names[model_field.name] = model_field.name
    model = create_model(
        f"{where.title()}Of{getattr(dependant.call, '__name__', 'route')}",
        __config__=ConfigDict(extra="ignore", populate_by_name=False),
        **definitions,
    )
    return _Params(where, model, names, public=public)


def compile_plan(dependant: Dependant) -> _Plan:
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call):
        raise UnsupportedRoute(f"{call}: LeanRoute runs async functions only (no sync or yield dependencies)")
    unsupported = {
        "path": dependant.path_params,
        "body": dependant.body_params,
        "cookie": dependant.cookie_params,
    }
    for kind, fields in unsupported.items():
        if fields:
            raise UnsupportedRoute(f"{call.__name__}: {kind} parameters need FastAPI's own resolver (use APIRoute)")
    for special in ("websocket", "http_connection", "response", "background_tasks", "security_scopes"):
        if getattr(dependant, f"{special}_param_name") is not None:
            raise UnsupportedRoute(f"{call.__name__}: a {special} parameter needs FastAPI's own resolver")
    plan = _Plan(call=call, request_name=dependant.request_param_name)
    for where in ("query", "header"):
        params = _compile_params(dependant, where)
        if params is not None:
            plan.params.append(params)
    plan.dependencies = [(sub.name, compile_plan(sub)) for sub in dependant.dependencies]
    return plan


class LeanRoute(APIRoute):
    """An APIRoute (same OpenAPI, same errors) resolved by a plan compiled once per route."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        plan = compile_plan(self.dependant)

        async def handle(request: Request) -> Response:
            arguments, errors = await plan.solve(request, {})
            if errors:
                raise RequestValidationError(errors)
            response = await plan.call(**arguments)
            if not isinstance(response, Response):
                raise UnsupportedRoute(f"{self.path}: a LeanRoute endpoint returns a Response")
            return response

        return handle
