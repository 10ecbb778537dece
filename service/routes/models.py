"""GET /models and GET /models/{name}: cards, providers and tensor shapes."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import ServiceDep
from service.errors import ApiError, error_responses
from service.registry import LoadedModel
from service.routes.schemas import ModelInfo, ModelList

router = APIRouter(tags=["models"])


def model_info(model: LoadedModel) -> ModelInfo:
    return ModelInfo(
        name=model.name, card=model.card_json, provider=model.provider, inputs=model.inputs, outputs=model.outputs
    )


@router.get("/models", response_model=ModelList, responses=error_responses(503))
async def list_models(service: ServiceDep) -> ModelList:
    registry = service.registry
    return ModelList(default=registry.default, models=[model_info(m) for m in registry.models.values()])


@router.get("/models/{name}", response_model=ModelInfo, responses=error_responses(404, 503))
async def get_model_info(name: str, service: ServiceDep) -> ModelInfo:
    model = service.registry.models.get(name)
    if model is None:
        available = sorted(service.registry.models)
        raise ApiError(404, "model_not_found", f"unknown model {name!r}; available: {available}", {"available": available})
    return model_info(model)
