"""Peer: the decoder behind BentoML with adaptive batching, as its documentation lays it out.

`Decoder` is one service with one batchable API: each request's `latents` [n, D] joins the others
along axis 0, up to `max_batch_size` rows, and the answer is the ndarray as JSON (BentoML's own
serialisation). A batchable API returns what its batch splits into, never raw bytes, so the binary
answer takes BentoML's documented composition: `DecoderNpy` is an entry service that depends on
`Decoder` (`bentoml.depends`, its own worker process, called with `to_async`) and returns the
.npy bytes. One worker and one thread per service (the defaults, spelled out); access logs off,
as the service under comparison runs without them.

    cd bench/peers && bentoml serve bentoml_service:Decoder --host 127.0.0.1 --port 8002     # JSON
    cd bench/peers && bentoml serve bentoml_service:DecoderNpy --host 127.0.0.1 --port 8003  # .npy
"""

from __future__ import annotations

import bentoml
import numpy as np
from onnx_decoder import Decoder as OnnxDecoder
from onnx_decoder import npy_bytes

SERVICE_CONFIG = {"workers": 1, "threads": 1, "logging": {"access": {"enabled": False}}}
MAX_BATCH_ROWS = 256  # as the service's VAE_MAX_BATCH_SIZE; one 256-latent request fits one batch


@bentoml.service(**SERVICE_CONFIG)
class Decoder:
    def __init__(self) -> None:
        self.decoder = OnnxDecoder()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_ROWS)
    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.decoder.decode(latents)


@bentoml.service(**SERVICE_CONFIG)
class DecoderNpy:
    decoder = bentoml.depends(Decoder)

    @bentoml.api
    async def decode_npy(self, latents: np.ndarray) -> bytes:
        return npy_bytes(await self.decoder.to_async.decode(latents))
