"""POST /score: how likely each uploaded image is under the model, and whether it is an outlier."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from service import errors, outputs
from service.deps import EngineDep, ModelDep, ServiceDep, reject_unknown_query
from service.handlers import error_responses
from service.inference import to_uint8
from service.inputs import ScoreQuery, check_score_k, media_type_of, parse_model_inputs, read_body, read_uploads
from service.routes.images import TAKES_UPLOADS
from service.routes.schemas import NPY_CONTENT, UPLOAD_CONTENT, ScoreJSON
from service.routing import LeanRoute
from service.scoring import bits_per_dim, complexity_bits, corrected_score

router = APIRouter(tags=["scores"], dependencies=[Depends(reject_unknown_query)], route_class=LeanRoute)

SCORE_BODY = {"requestBody": {"required": True, "content": {**UPLOAD_CONTENT, **NPY_CONTENT}}}


@router.post(
    "/score",
    response_model=ScoreJSON,
    responses=error_responses(*TAKES_UPLOADS),
    openapi_extra=SCORE_BODY,
    summary="Negative ELBO, importance-sampled NLL, test-set percentile and outlier flag per image",
)
async def score(
    query: Annotated[ScoreQuery, Query()],
    model: ModelDep,
    request: Request,
    engine: EngineDep,
    service: ServiceDep,
) -> Response:
    settings = service.settings
    if not model.scorable:
        raise errors.InvalidRequest(
            f"model {model.name!r} cannot be scored: its card gives no likelihood the service can evaluate "
            "(bernoulli, or gaussian with metrics.decoder_sigma_per_channel)"
        )
    check_score_k(query.k, 1, settings.max_score_k, settings.max_score_rows)  # before reading the body
    limit = model.limits.max_upload_images
    if media_type_of(request) == "application/x-npy":
        body = await read_body(request, settings.max_upload_bytes, "VAE_MAX_UPLOAD_BYTES")
        images = parse_model_inputs(body, model.image_shape, limit)
        filenames: list[str | None] = [None] * len(images)
    else:
        uploads = await read_uploads(request, settings.max_upload_bytes, limit)
        images = await service.preprocess(uploads, model, query.normalize)
        filenames = [upload.filename for upload in uploads]
    k = check_score_k(query.k, len(images), settings.max_score_k, settings.max_score_rows)
    _, scores = await engine.score(model, images, k, query.seed)
    complexity = await asyncio.to_thread(lambda: [complexity_bits(p) for p in to_uint8(images)])
    table = model.score_table
    dims = math.prod(model.image_shape)
    dequantized = model.card.likelihood == "gaussian"
    results = []
    for filename, figures, bits in zip(filenames, scores, complexity, strict=True):
        corrected = corrected_score(figures.neg_elbo, bits)
        outlier_score = table.outlier_score(figures.neg_elbo, corrected) if table is not None else None
        results.append(
            {
                "filename": filename,
                **figures._asdict(),
                "bits_per_dim": bits_per_dim(figures.nll, dims, dequantized),
                "complexity_bits": bits,
                "complexity_corrected": corrected,
                "percentile": table.percentile(figures.neg_elbo) if table is not None else None,
                "outlier_score": outlier_score,
                "outlier": None if outlier_score is None else outlier_score > settings.outlier_percentile,
            }
        )
    table_info = None
    if table is not None:
        table_info = {"images": len(table.neg_elbo), "k": table.k, "prior": table.prior}
        command = (model.card_json.get("scores") or {}).get("command")
        if command:
            table_info["command"] = command
    body_json = {
        "model": model.name,
        "k": k,
        "seed": query.seed,
        "prior": model.card.prior.default,
        "outlier_percentile": settings.outlier_percentile,
        "table": table_info,
        "results": results,
    }
    return outputs.ModelResponse(outputs.json_bytes(body_json), model, outputs.MEDIA_TYPES["json"])
