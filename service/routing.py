"""LeanRoute: typed FastAPI routes whose parameters are resolved by a small resolver of our own.

FastAPI writes the OpenAPI schema from a route's signature, and that stays as it is. At request
time FastAPI's general resolver re-inspects every parameter's annotation and walks every
dependency, which costs the service's tiny inference requests more than their own work. A
LeanRoute compiles the same signature once, at start-up, into a plan:

- each dependant's scalar query, header and path parameters become one pydantic model, validated
  in one call (a query parameter that is itself a pydantic model is validated as that model);
  with no query string at all, the defaults validated once at start-up are reused;
- `Depends` callables are awaited in order, each once per request (FastAPI's `use_cache`);
- errors become the RequestValidationError FastAPI would raise, with the same `loc`, so the
  answers are the same (service/handlers.py).

It supports what this service's routes use (Request, query, header and path parameters, async
dependencies without yield) and refuses, when the app is built, a route that needs more (body or
cookie parameters, sync or yield dependencies, security scopes): those stay plain APIRoutes.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class UnsupportedRoute(TypeError):
    """A LeanRoute whose signature needs FastAPI's general resolver."""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


SEEN_LIMIT = 512  # validated query strings (or header sets) kept per parameter group


@dataclass
class _Params:
    """One dependant's query, header or path parameters, validated by one model call."""

    where: str  # "query", "header" or "path"
    model: type[BaseModel]
    names: dict[str, str]  # argument name -> the model field holding it
    whole: str | None = None  # argument that receives the validated model itself
    headers: dict[str, str] = field(default_factory=dict)  # model field -> HTTP header name
    public: dict[str, str] = field(default_factory=dict)  # model alias -> the name FastAPI reports
    defaults: dict[str, Any] | None = None  # the arguments when nothing is given, if that is valid

    # Results by the raw query string or header values: clients repeat a handful of them, and the
    # models are frozen or only read, so one validated copy serves every request that sends them.
    seen: dict[Any, tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=dict)
    raw_headers: dict[bytes, str] = field(init=False)  # encoded header name -> model field

    def __post_init__(self) -> None:
        try:
            self.defaults = self._arguments(self.model.model_validate({}))
        except ValidationError:
            self.defaults = None
        self.raw_headers = {header.encode("latin-1"): name for name, header in self.headers.items()}

    def read(self, request: Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        source: Mapping[str, Any]
        key: Any = None
        if self.where == "query":
            key = request.scope.get("query_string")
            if not key and self.defaults is not None:
                return self.defaults, []
        elif self.where == "header":
            found: dict[str, bytes] = {}
            for name, value in request.scope["headers"]:
                if name in self.raw_headers:  # the first of a repeated header, as Starlette reads it
                    found.setdefault(self.raw_headers[name], value)
            key = tuple(sorted(found.items()))
        if key is not None and (known := self.seen.get(key)) is not None:
            return known
        if self.where == "query":
            source = request.query_params
        elif self.where == "header":
            source = {name: value.decode("latin-1") for name, value in found.items()}
        else:
            source = request.path_params
        result: tuple[dict[str, Any], list[dict[str, Any]]]
        try:
            result = self._arguments(self.model.model_validate(source)), []
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            result = {}, [{**e, "loc": (self.where, *self._public(e["loc"]))} for e in errors]
        if key is not None:
            if len(self.seen) >= SEEN_LIMIT:
                self.seen.clear()  # bounded: a client sending ever-new strings gains nothing
            self.seen[key] = result
        return result

    def _arguments(self, validated: BaseModel) -> dict[str, Any]:
        if self.whole is not None:
            return {self.whole: validated}
        return {argument: getattr(validated, name) for argument, name in self.names.items()}

    def _public(self, loc: tuple[Any, ...]) -> tuple[Any, ...]:
        return (self.public.get(loc[0], loc[0]), *loc[1:]) if loc else loc


@dataclass
class _Plan:
    call: Callable[..., Awaitable[Any]]
    request_name: str | None = None
    params: list[_Params] = field(default_factory=list)
    dependencies: list[tuple[str | None, _Plan]] = field(default_factory=list)
    order: list[_Plan] = field(default_factory=list)  # every dependency once, in the order they run

    def flatten(self) -> None:
        """Compute `order`: the dependency tree, depth first, each callable once (FastAPI's
        use_cache), so a request walks one list instead of awaiting one nested solve per level."""
        seen: set[Any] = set()

        def visit(plan: _Plan) -> None:
            for _, sub in plan.dependencies:
                if sub.call not in seen:
                    visit(sub)
                    seen.add(sub.call)
                    self.order.append(sub)

        visit(self)

    async def solve(self, request: Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The keyword arguments for `call`, and any validation errors (then `call` must not run).
        A dependency whose own parameters, or whose dependencies, failed is not called."""
        results: dict[Any, Any] = {}
        errors: list[dict[str, Any]] = []
        for step in self.order:
            values, complete = step.arguments(request, results, errors)
            if complete:
                results[step.call] = await step.call(**values)
        values, _ = self.arguments(request, results, errors)
        return values, errors

    def arguments(
        self, request: Request, results: dict[Any, Any], errors: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        values: dict[str, Any] = {}
        complete = True
        for name, plan in self.dependencies:
            if plan.call not in results:
                complete = False  # it failed; its errors are already listed
            elif name is not None:
                values[name] = results[plan.call]
        if self.request_name is not None:
            values[self.request_name] = request
        for params in self.params:
            found_values, found = params.read(request)
            values.update(found_values)
            if found:
                errors.extend(found)
                complete = False
        return values, complete


PARAM_FIELDS = {"query": "query_params", "header": "header_params", "path": "path_params"}


def _compile_params(dependant: Dependant, where: str) -> _Params | None:
    fields = getattr(dependant, PARAM_FIELDS[where])
    if not fields:
        return None
    if where == "query" and len(fields) == 1 and (model := _model_of(fields[0].field_info.annotation)):
        return _Params(where, model, {}, whole=fields[0].name)
    definitions: dict[str, Any] = {}
    names: dict[str, str] = {}
    headers: dict[str, str] = {}
    public: dict[str, str] = {}
    for model_field in fields:
        if _model_of(model_field.field_info.annotation):
            raise UnsupportedRoute(f"{dependant.call}: a {where} model beside other {where} parameters")
        info = copy.copy(model_field.field_info)  # FastAPI's own stays as it is, for the schema
        if where == "header":
            # FastAPI reads parameter `x_trace_id` from header X-Trace-Id and reports it as x-trace-id.
            header = model_field.alias.replace("_", "-").lower()
            info.alias = info.validation_alias = model_field.name
            headers[model_field.name] = header
            public[model_field.name] = header
        definitions[model_field.name] = (info.annotation, info)
        names[model_field.name] = model_field.name
    model = create_model(
        f"{where.title()}Of{getattr(dependant.call, '__name__', 'route')}",
        __config__=ConfigDict(extra="ignore"),
        **definitions,
    )
    return _Params(where, model, names, headers=headers, public=public)


def compile_plan(dependant: Dependant, root: bool = True) -> _Plan:
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call):
        raise UnsupportedRoute(f"{call}: LeanRoute runs async functions only (no sync or yield dependencies)")
    for kind, fields in (("body", dependant.body_params), ("cookie", dependant.cookie_params)):
        if fields:
            raise UnsupportedRoute(f"{call.__name__}: {kind} parameters need FastAPI's own resolver (use APIRoute)")
    for special in ("websocket", "http_connection", "response", "background_tasks", "security_scopes"):
        if getattr(dependant, f"{special}_param_name") is not None:
            raise UnsupportedRoute(f"{call.__name__}: a {special} parameter needs FastAPI's own resolver")
    plan = _Plan(call=call, request_name=dependant.request_param_name)
    for where in PARAM_FIELDS:
        params = _compile_params(dependant, where)
        if params is not None:
            plan.params.append(params)
    plan.dependencies = [(sub.name, compile_plan(sub, root=False)) for sub in dependant.dependencies]
    if root:
        plan.flatten()
    return plan


class LeanRoute(APIRoute):
    """An APIRoute (same OpenAPI, same errors) resolved by a plan compiled once per route. An
    endpoint returns a Response, or a pydantic model or plain data, sent as JSON."""

    handler: Callable[[Request], Coroutine[Any, Any, Response]]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        # Kept on the route: the data plane (service/dataplane.py) calls it without the router.
        self.handler = self.build_handler()
        return self.handler

    def build_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        plan = self.plan = compile_plan(self.dependant)
        status = self.status_code or 200

        async def handle(request: Request) -> Response:
            arguments, errors = await plan.solve(request)
            if errors:
                raise RequestValidationError(errors)
            result = await plan.call(**arguments)
            if isinstance(result, Response):
                return result
            if isinstance(result, BaseModel):
                return Response(result.model_dump_json(), status, media_type="application/json")
            return JSONResponse(jsonable_encoder(result), status)

        return handle
