"""GET /models, GET /models/{name} (cards, providers and tensor shapes) and
GET /models/{name}/projection (the latent map of the model's test set)."""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, Depends, Response

from service import errors
from service.deps import ServiceDep, reject_unknown_query
from service.handlers import error_responses
from service.registry import LoadedModel
from service.routes.schemas import ModelInfo, ModelList, Projection
from service.routing import LeanRoute

router = APIRouter(tags=["models"], dependencies=[Depends(reject_unknown_query)], route_class=LeanRoute)


def model_info(model: LoadedModel) -> ModelInfo:
    return ModelInfo(
        name=model.name,
        card=model.card_json,
        provider=model.provider,
        image_shape=list(model.image_shape),
        latent_shape=list(model.latent_shape),
        labels=model.card.labels,
        limits=model.limits,
        inputs=model.inputs,
        outputs=model.outputs,
    )


@router.get("/models", response_model=ModelList, responses=error_responses(errors.NotReady))
async def list_models(service: ServiceDep) -> ModelList:
    registry = service.registry
    assert registry is not None
    return ModelList(default=registry.default, models=[model_info(m) for m in registry.models.values()])


@router.get(
    "/models/{name}", response_model=ModelInfo, responses=error_responses(errors.ModelNotFound, errors.NotReady)
)
async def get_model_info(name: str, service: ServiceDep) -> ModelInfo:
    assert service.registry is not None
    return model_info(service.registry.find(name))


@functools.lru_cache(maxsize=32)
def file_body(path: Path, sha256: str) -> bytes:
    """A file the registry verified at start, read once (keyed by its digest too: one body per version)."""
    return path.read_bytes()


@router.get(
    "/models/{name}/projection",
    response_model=Projection,
    responses=error_responses(errors.ModelNotFound, errors.RouteNotFound, errors.NotReady),
)
async def get_projection(name: str, service: ServiceDep) -> Response:
    """The test set's encoder means on two principal components; a map point (u, v) is the latent
    mean + u * components[0] + v * components[1]. 404 `not_found` for a model whose card names none."""
    assert service.registry is not None
    model = service.registry.find(name)
    path = model.extra_files.get("projection")
    if path is None:
        raise errors.RouteNotFound(
            f"model {model.name!r} has no projection: its card names no files.projection "
            f"(add one with `python -m training project MODEL_DIR`)",
            {"model": model.name},
        )
    body = file_body(path, model.card.files["projection"].sha256)
    return Response(body, media_type="application/json")
