"""Peer: the decoder behind plain FastAPI, as its tutorial would write it: no batching.

A pydantic model for the body, a return type for the JSON answer (FastAPI then validates and
serialises it with pydantic), and `def` routes, which FastAPI runs in its thread pool because
`session.run` blocks. One `session.run` per request.

    cd bench/peers && python -m uvicorn plain_fastapi:app --host 127.0.0.1 --port 8001 --workers 1
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from onnx_decoder import NPY_MEDIA_TYPE, Decoder, npy_bytes
from pydantic import BaseModel

app = FastAPI()
decoder = Decoder()


class DecodeRequest(BaseModel):
    latents: list[list[float]]


class DecodeResponse(BaseModel):
    images: list[list[list[list[float]]]]  # [N, 1, 28, 28]


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/decode")
def decode(request: DecodeRequest) -> DecodeResponse:
    return DecodeResponse(images=decoder.decode(request.latents).tolist())


@app.post("/decode_npy")
def decode_npy(request: DecodeRequest) -> Response:
    return Response(content=npy_bytes(decoder.decode(request.latents)), media_type=NPY_MEDIA_TYPE)
