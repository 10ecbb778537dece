"""The model repository extension: load a new or changed model folder, or unload one, without a
restart. A new version is verified (card, sha256, graphs) and warmed up before it takes traffic;
the old one drains its queued work before it is freed; a folder that fails verification is
refused while the old version keeps serving. One operation at a time."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from service.errors import InvalidRequest, ModelNotFound
from service.inference import Engine
from service.oip.tensors import SUFFIXES
from service.registry import ModelLoadError, load_model, read_card

logger = logging.getLogger("service.oip.repository")


class ModelRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.failures: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def folders(self) -> dict[str, Path]:
        """Model name (from its card, else the folder's name) -> folder, for every model.json."""
        found: dict[str, Path] = {}
        for directory in sorted(p for p in Path(self.settings.model_dir).iterdir() if p.is_dir()):
            if not (directory / "model.json").exists():
                continue
            try:
                name = read_card(directory / "model.json")[0].name
            except ModelLoadError:
                name = directory.name
            found.setdefault(name, directory)
        return found

    @staticmethod
    def model_name(name: str) -> str:
        """`mnist`, `mnist-encoder` and `mnist-decoder` all name the model `mnist`."""
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name

    def index(self) -> list[dict[str, Any]]:
        loaded = self.engine.registry.models
        entries = []
        for name in sorted(set(self.folders()) | set(loaded)):
            model = loaded.get(name)
            entries.append(
                {
                    "name": name,
                    "version": model.card.version if model else "",
                    "state": "READY" if model else "UNAVAILABLE",
                    "reason": "" if model else self.failures.get(name, "not loaded"),
                }
            )
        return entries

    async def load(self, name: str) -> None:
        name = self.model_name(name)
        async with self._lock:
            folders = self.folders()
            if name not in folders:
                raise ModelNotFound(name, sorted(folders))
            try:
                model = await asyncio.to_thread(load_model, folders[name], self.settings)
                await asyncio.to_thread(Engine.warm_up_model, model)
            except ModelLoadError as exc:
                self.failures[name] = str(exc)
                state = "the loaded version keeps serving" if name in self.engine.registry.models else "not loaded"
                raise InvalidRequest(f"model {name!r} refused ({state}): {exc}") from None
            self.failures.pop(name, None)
            previous = self.engine.add(model)
            logger.info("loaded %s %s from %s", name, model.card.version, folders[name])
            if previous is not None:
                await asyncio.to_thread(self.engine.retire, previous)
                logger.info("retired the previous %s %s", name, previous.card.version)

    async def unload(self, name: str) -> None:
        name = self.model_name(name)
        async with self._lock:
            registry = self.engine.registry
            if name not in registry.models:
                raise ModelNotFound(name, sorted(registry.models))
            if name == registry.default:
                raise InvalidRequest(f"{name!r} is the default model (VAE_DEFAULT_MODEL); it cannot be unloaded")
            model = self.engine.remove(name)
            await asyncio.to_thread(self.engine.retire, model)
            logger.info("unloaded %s", name)
