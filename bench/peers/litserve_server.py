"""Peer: the decoder behind LitServe with batching, as its documentation lays it out.

Every API is `decode_request -> batch -> predict -> unbatch -> encode_response` in an inference
worker process, fed by an API-server process (uvicorn + FastAPI). Two LitAPIs, one per answer:
`/decode` (the images as a JSON float list) and `/decode_npy` (.npy bytes in a `Response`, as
LitServe's image examples return bytes). A request may carry several latents, so `batch`
concatenates rows instead of stacking one input per request, and `predict` splits the images back.

- `max_batch_size` 64 requests (the most connections the benchmark opens); `batch_timeout` 1 ms:
  at 0 LitServe's collector polls its queue without blocking and keeps the shared core busy;
- one inference worker per API (`workers_per_device=1`) and one API server (`num_api_servers=1`);
- `fast_queue=True`, the ZeroMQ transport its documentation recommends beyond ~100 requests/s;
- log level warning (no access log), as the service under comparison runs.

    python bench/peers/litserve_server.py --port 8004
"""

from __future__ import annotations

import argparse

import litserve as ls
import numpy as np
from fastapi import Response
from onnx_decoder import NPY_MEDIA_TYPE, Decoder, npy_bytes

MAX_BATCH_REQUESTS = 64
BATCH_TIMEOUT_S = 0.001


class DecoderAPI(ls.LitAPI):
    def setup(self, device) -> None:
        self.decoder = Decoder()

    def decode_request(self, request) -> np.ndarray:
        return np.asarray(request["latents"], dtype=np.float32)

    def batch(self, inputs: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
        return np.concatenate(inputs), [len(rows) for rows in inputs]

    def predict(self, batch: tuple[np.ndarray, list[int]]) -> list[np.ndarray]:
        latents, sizes = batch
        return np.split(self.decoder.decode(latents), np.cumsum(sizes)[:-1])

    def encode_response(self, images: np.ndarray):
        return {"images": images.tolist()}


class DecoderNpyAPI(DecoderAPI):
    def encode_response(self, images: np.ndarray):
        return Response(content=npy_bytes(images), media_type=NPY_MEDIA_TYPE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8004)
    args = parser.parse_args()
    apis = [
        DecoderAPI(max_batch_size=MAX_BATCH_REQUESTS, batch_timeout=BATCH_TIMEOUT_S, api_path="/decode"),
        DecoderNpyAPI(max_batch_size=MAX_BATCH_REQUESTS, batch_timeout=BATCH_TIMEOUT_S, api_path="/decode_npy"),
    ]
    server = ls.LitServer(apis, accelerator="cpu", workers_per_device=1, fast_queue=True)
    server.run(host=args.host, port=args.port, num_api_servers=1, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
