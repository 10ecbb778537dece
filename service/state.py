"""What the lifespan builds and the routes use: one ServiceState per app."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from service.config import Settings
from service.inference import Engine
from service.metrics import Metrics
from service.registry import Registry


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    registry: Registry | None = None
    engine: Engine | None = None
    # Large uploads are decoded off the event loop; two threads suit two cores.
    image_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="images")
    )
    ready: bool = False
    shutting_down: bool = False
