"""GET /models and GET /models/{name}: cards, providers and tensor shapes."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service import errors
from service.deps import ServiceDep, reject_unknown_query
from service.handlers import error_responses
from service.registry import LoadedModel
from service.routes.schemas import ModelInfo, ModelList
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
