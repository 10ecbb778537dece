"""The data plane: the hot inference routes served by one small ASGI layer beside FastAPI's router.

Issue 6's profiles showed that FastAPI's own machinery costs a tiny inference request about as
much as its work. Triton separates a data plane from its control plane; this is the same split:

- `DataPlane` is the outermost layer of the app's middleware stack (`ServiceApp` builds it). A
  request for one of its routes (`/decode`, `/sample`, `/encode`, `/reconstruct`, the OIP
  `infer`) goes through the service's own middlewares (request id, API keys, metrics, CORS: the
  same classes, in the same order) straight to that route's LeanRoute handler.
- Everything else (docs, models, health, admin, the playground, any other method on these
  paths) goes to FastAPI's full stack, the control plane.

What a data-plane request skips: Starlette's router walk, FastAPI's exception, exit-stack,
telemetry and body-limit wrappers, and Starlette's request/response adapter. What it keeps is
everything the route defines: the same handler (its compiled plan: every query, header and body
check and limit), the same exception handlers and so the same error shapes, the same metrics,
and the same OpenAPI description, since the routes stay declared on the app.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from service.routing import LeanRoute

# As Starlette types an app's exception handlers: a Response, or an awaitable one.
ExceptionHandler = Callable[[Request, Any], Response | Awaitable[Response]]


def lean_routes(routes: Iterable[Any]) -> Iterator[LeanRoute]:
    """Every LeanRoute of an app. FastAPI keeps an included router whole (`original_router`); an
    include that adds a prefix or dependencies would change the route, so it cannot be served here."""
    for route in routes:
        if isinstance(route, LeanRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = route.include_context
            if context.prefix or context.dependencies:
                raise TypeError(f"data plane: include_router({inner}) with a prefix or dependencies is not supported")
            yield from lean_routes(inner.routes)


class DataPlane:
    """ASGI app: `routes` served through `middleware` to their handlers; the rest to `control`."""

    def __init__(
        self,
        control: ASGIApp,
        routes: Iterable[LeanRoute],
        middleware: Sequence[Middleware],
        exception_handlers: Mapping[Any, ExceptionHandler],
    ) -> None:
        self.control = control
        self.exact: dict[tuple[str, str], LeanRoute] = {}
        self.templated: list[LeanRoute] = []
        for route in routes:
            if route.param_convertors:
                self.templated.append(route)
            else:
                self.exact.update({(method, route.path): route for method in route.methods or ()})
        self.prefixes = tuple({route.path.split("{", 1)[0] for route in self.templated})
        self.exception_handlers = exception_handlers
        app: ASGIApp = self._serve
        for cls, args, kwargs in reversed(middleware):  # the first listed is the outermost, as in Starlette
            app = cls(app, *args, **kwargs)
        self.stack = app

    @property
    def paths(self) -> list[str]:
        return sorted({path for _, path in self.exact} | {route.path for route in self.templated})

    def route_for(self, scope: Scope) -> LeanRoute | None:
        route = self.exact.get((scope["method"], scope["path"]))
        if route is not None or not scope["path"].startswith(self.prefixes):
            return route
        for candidate in self.templated:
            match, child = candidate.matches(scope)
            if match is Match.FULL:
                scope.update(child)  # path_params, as the router would set them
                return candidate
        return None  # a wrong method on an infer path: the control plane answers 405

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.route_for(scope) if scope["type"] == "http" else None
        if route is None:
            await self.control(scope, receive, send)
            return
        scope["route"] = route  # the metrics middleware labels requests by the route's template
        scope.setdefault("path_params", {})
        await self.stack(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await scope["route"].handler(request)
        except Exception as exc:  # the app's own handlers give every error its shape and status
            answer = self._handler_for(exc)(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> ExceptionHandler:
        for cls in type(exc).__mro__:
            if cls in self.exception_handlers:
                return self.exception_handlers[cls]
        raise exc  # unreachable while handlers.py registers Exception; fail loudly if it does not
