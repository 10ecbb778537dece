"""What the lifespan builds and the routes use: one ServiceState per app."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from service.auth import KeyRing
from service.config import Settings
from service.inference import Engine
from service.inputs import Upload
from service.metrics import Metrics
from service.oip.repository import ModelRepository
from service.preprocessing import prepare_images
from service.registry import LoadedModel, Registry


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    registry: Registry | None = None
    engine: Engine | None = None
    image_executor: ThreadPoolExecutor = field(init=False)
    repository: ModelRepository | None = None
    keyring: KeyRing | None = None  # API keys, when VAE_API_KEYS is set
    version: str = "1.1.0"
    ready: bool = False
    shutting_down: bool = False

    def __post_init__(self) -> None:
        # Large uploads are decoded off the event loop, so one big image does not stall the others.
        self.image_executor = ThreadPoolExecutor(self.settings.image_decode_threads, thread_name_prefix="images")

    async def preprocess(self, uploads: list[Upload], model: LoadedModel, normalize: bool) -> np.ndarray:
        """Uploads -> the model's input batch; small ones inline, where a thread hop costs more."""
        blobs = [upload.data for upload in uploads]
        args = (blobs, model.input_spec, self.settings.max_image_pixels, normalize)
        if sum(map(len, blobs)) <= self.settings.inline_decode_bytes:
            return prepare_images(*args)
        return await asyncio.get_running_loop().run_in_executor(self.image_executor, prepare_images, *args)
