"""Query parameters as one pydantic model per route, validated in one call.

FastAPI checks each declared query parameter separately, with Python-level introspection of its
annotation on every request. Replacing that cut /sample n=1's event-loop CPU per request from 663
to 408 us in an interleaved A/B (bench/README.md "What the profiles showed"). One `model_validate` over `request.query_params` applies the same
pydantic rules in pydantic-core and raises the same RequestValidationError, so errors keep their
wording and shape (service/errors.py). The routes document the fields in OpenAPI through
`openapi_parameters`, since FastAPI no longer sees them. /decode goes further and checks its two
string parameters by hand (routes/generate.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class QueryModel(BaseModel):
    """Base of the routes' query models. Unknown parameters are ignored, as FastAPI ignores them;
    a repeated one counts its last value."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Q = TypeVar("Q", bound=QueryModel)

ModelName = Annotated[str | None, Field(description="Model name (GET /models); default: the configured default model")]
Seed = Annotated[int | None, Field(ge=0, le=2**63 - 1, description="Seed for numpy default_rng; same seed, same output")]
Normalize = Annotated[
    bool, Field(description="true: make the image like the training data (docs/preprocessing.md); false: grayscale + resize")
]
ImageFormat = Annotated[
    Literal["png", "json", "npy"] | None, Field(description="Output format; default: from the Accept header, else png")
]


def parse_query(model: type[Q], request: Request) -> Q:
    """The request's query parameters as `model`; a RequestValidationError (422) names each bad one."""
    try:
        return model.model_validate(request.query_params)
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def openapi_parameters(model: type[QueryModel]) -> list[dict[str, Any]]:
    """OpenAPI `parameters` entries for the model's fields (for a route's `openapi_extra`)."""
    properties = model.model_json_schema()["properties"]
    parameters = []
    for name, field in model.model_fields.items():
        schema = {key: value for key, value in properties[name].items() if key not in ("title", "description")}
        entry: dict[str, Any] = {"name": name, "in": "query", "required": field.is_required(), "schema": schema}
        if field.description:
            entry["description"] = field.description
        parameters.append(entry)
    return parameters
