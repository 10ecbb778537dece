"""The fourth stage: validated arrays in, model outputs out, through one batcher per model graph;
and the figures computed from them (samples, reconstruction errors).

Randomness lives here, never in the graphs: z = mu + exp(logvar / 2) * eps with eps drawn by
numpy's default_rng(seed) (FACTS.md: sampling ops in exported graphs cannot be seeded).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from service.batching import BatchObserver, GraphBatcher
from service.config import Settings
from service.errors import InvalidRequest
from service.registry import GRAPHS, LoadedModel, Registry, graph_tensor_names
from service.scoring import Score, importance_latents, log_likelihood, score_noise, score_one

ObserverFactory = Callable[[str, str, GraphBatcher], BatchObserver]

logger = logging.getLogger("service.inference")


class Encoded(NamedTuple):  # NamedTuple: built per request, cheaper than a frozen dataclass
    mu: np.ndarray  # [N, D] float32
    logvar: np.ndarray  # [N, D] float32


class Decoded(NamedTuple):
    images: np.ndarray  # [N, C, H, W] float32 in [0, 1]
    batch_pixels: np.ndarray | None  # the pixels computed per batch, when the request asked for them

    @property
    def pixels(self) -> np.ndarray:
        """[N, H, W] (C = 1) or [N, H, W, C] uint8, for PNG outputs."""
        return self.batch_pixels if self.batch_pixels is not None else to_uint8(self.images)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[N, C, H, W] floats in [0, 1] -> 8-bit pixels, rounded and clipped: [N, H, W] for one
    channel, [N, H, W, C] (channels last, as image files hold them) for colour."""
    if images.shape[1] == 1:
        images = images.reshape(len(images), *images.shape[-2:])
    else:
        images = images.transpose(0, 2, 3, 1)
    # np.clip(np.rint(x * 255.0), 0, 255) bit for bit, in place on one float32 temporary: the
    # chained form allocates (and first touches) a fresh batch-sized array at every step.
    scaled = np.multiply(images, np.float32(255.0))
    np.rint(scaled, out=scaled)
    np.clip(scaled, np.float32(0.0), np.float32(255.0), out=scaled)
    return scaled.astype(np.uint8)


def reconstruction_errors(inputs: np.ndarray, reconstructions: np.ndarray) -> list[float]:
    """Mean squared error per image, pixels in [0, 1]."""
    difference = inputs.astype(np.float64) - reconstructions
    return (difference**2).reshape(len(inputs), -1).mean(axis=1).tolist()


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """float32 probabilities from logits, elementwise (so a row never depends on its batch)."""
    out = np.negative(logits, dtype=np.float32)
    np.exp(out, out=out)
    out += np.float32(1.0)
    return np.reciprocal(out, out=out)


def _session_runner(model: LoadedModel, graph: str):
    """batch -> outputs for one graph, in the service's terms whatever the graph's own names:
    encoder -> [mu, logvar]; decoder -> [images in [0, 1]]."""
    session = model.sessions[graph]
    input_name, output_names = graph_tensor_names(model.card, graph)

    if graph == "encoder":
        if model.card.tensors.encoder_output is None:

            def run_encoder(batch: np.ndarray) -> list[np.ndarray]:
                return session.run(output_names, {input_name: batch})

            return run_encoder

        def run_joint_encoder(batch: np.ndarray) -> list[np.ndarray]:
            (joint,) = session.run(output_names, {input_name: batch})
            mu, logvar = np.split(joint, 2, axis=1)
            return [np.ascontiguousarray(mu), np.ascontiguousarray(logvar)]

        return run_joint_encoder

    logits = model.card.decoder_output == "logits"

    def run_decoder(batch: np.ndarray) -> list[np.ndarray]:
        (images,) = session.run(output_names, {input_name: batch})
        return [sigmoid(images) if logits else images]

    return run_decoder


def _batch_pixels(outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The decoder's derived output: 8-bit pixels for the whole batch on the batch worker, one numpy
    pass per batch instead of several per request on the event loop; only for batches that hold a
    request answering with images (a .npy answer needs none)."""
    return [to_uint8(outputs[0])]


class Engine:
    """One GraphBatcher per (model, graph), kept on the model itself: a request that resolved a
    model keeps its batchers even while a reload swaps in a new version (which then drains)."""

    def __init__(self, registry: Registry, settings: Settings, observe: ObserverFactory | None = None):
        self.registry = registry
        self.settings = settings
        self.timeout_s = settings.request_timeout_s
        self.observe = observe
        for model in registry.models.values():
            self._attach(model)

    @property
    def batchers(self) -> dict[tuple[str, str], GraphBatcher]:
        return {(m.name, g): b for m in self.registry.models.values() for g, b in m.batchers.items()}

    def _attach(self, model: LoadedModel) -> None:
        settings = self.settings
        for graph in GRAPHS:
            batcher = GraphBatcher(
                f"{model.name}/{graph}",
                _session_runner(model, graph),
                max_batch_rows=model.limits.batch_rows[graph],
                max_queue_rows=model.limits.queue_rows[graph],
                max_queue_delay_s=settings.max_queue_delay_ms / 1000.0,
                max_queue_wait_s=settings.max_queue_wait_s,
                workers=settings.batch_workers,
                parallel_min_rows=settings.engine_spill_rows,
                seconds_per_batch=settings.retry_after_batch_s,
                derive=_batch_pixels if graph == "decoder" else None,
            )
            if self.observe is not None:
                batcher.observer = self.observe(model.name, graph, batcher)
            model.batchers[graph] = batcher

    def start(self) -> None:
        for batcher in self.batchers.values():
            batcher.start()

    def stop(self, timeout_s: float | None = None) -> None:
        for batcher in self.batchers.values():
            batcher.stop(timeout_s)

    @staticmethod
    def warm_up_model(model: LoadedModel) -> None:
        """One inference per graph, straight on the sessions, so the first request pays no set-up cost."""
        images = np.zeros((1, *model.image_shape), dtype=np.float32)
        mu, _ = _session_runner(model, "encoder")(images)
        _session_runner(model, "decoder")(mu)

    def warm_up(self) -> None:
        for model in self.registry.models.values():
            self.warm_up_model(model)

    def add(self, model: LoadedModel) -> LoadedModel | None:
        """Serve `model` (verified and warmed up by the caller) from now on; returns the version it
        replaces, whose batchers the caller drains with retire()."""
        self._attach(model)
        for batcher in model.batchers.values():
            batcher.start()
        previous = self.registry.models.get(model.name)
        self.registry.models[model.name] = model
        return previous

    def remove(self, name: str) -> LoadedModel:
        model = self.registry.models.pop(name)
        return model

    def retire(self, model: LoadedModel) -> None:
        """Finish what `model`'s batchers hold, then free them (blocking; run it in a thread)."""
        for batcher in model.batchers.values():
            batcher.stop(self.settings.shutdown_timeout_s)

    def refuse_if_full(self, model: LoadedModel, graph: str, rows: int = 1) -> None:
        """QueueFull now if `graph`'s queue is full: routes ask before parsing a body it could not take."""
        model.batchers[graph].refuse_if_full(rows)

    def could_refuse(self, model: LoadedModel, graph: str, rows: int) -> bool:
        """Whether `graph`'s queue would refuse `rows` more rows now."""
        batcher = model.batchers[graph]
        return batcher.queued_rows + rows > batcher.max_queue_rows

    async def encode(self, model: LoadedModel, images: np.ndarray) -> Encoded:
        mu, logvar = await model.batchers["encoder"].infer(images, self.timeout_s)
        return Encoded(mu, logvar)

    async def decode(self, model: LoadedModel, latents: np.ndarray, pixels: bool = True) -> Decoded:
        """`pixels`: the answer shows images (PNG, JSON), so their 8-bit pixels come with the batch."""
        outputs = await model.batchers["decoder"].infer(latents, self.timeout_s, derived=pixels)
        return Decoded(outputs[0], outputs[1] if len(outputs) > 1 else None)

    async def score(self, model: LoadedModel, images: np.ndarray, k: int, seed: int) -> tuple[Encoded, list[Score]]:
        """Each image's scores from k importance samples (service/scoring.py). The k x N decoder rows
        go through the decoder's batcher in pieces of at most max_sample_n rows, one at a time,
        so a large request holds no more of the queue than a /sample does."""
        encoded = await self.encode(model, images)
        count = len(images)
        mu, logvar = encoded.mu.reshape(count, -1), encoded.logvar.reshape(count, -1)
        eps = score_noise(seed, k, mu.shape[1])
        rows = np.concatenate([importance_latents(m, v, eps) for m, v in zip(mu, logvar, strict=True)])
        sigma = model.decoder_sigma
        log_px_z = np.empty(len(rows))
        piece = model.limits.max_sample_n
        for start in range(0, len(rows), piece):
            latents = rows[start : start + piece].reshape(-1, *model.latent_shape)
            decoded = await self.decode(model, latents, pixels=False)
            await asyncio.to_thread(
                _fill_log_likelihoods, log_px_z, start, decoded.images, images, k, model.card.likelihood, sigma
            )
        prior = model.prior.mixture if model.prior is not None and model.card.prior.default == "mixture" else None
        scores = [score_one(mu[i], logvar[i], eps, log_px_z[i * k : (i + 1) * k], prior) for i in range(count)]
        return encoded, scores


def _fill_log_likelihoods(
    out: np.ndarray, start: int, decoded: np.ndarray, images: np.ndarray, k: int, likelihood: str, sigma
) -> None:
    """out[start : start + len(decoded)] = log p(x|z) of those rows; row r belongs to image r // k."""
    end = start + len(decoded)
    row = start
    while row < end:
        image = row // k
        stop = min(end, (image + 1) * k)
        out[row:stop] = log_likelihood(images[image], decoded[row - start : stop - start], likelihood, sigma)
        row = stop


def choose_prior(model: LoadedModel, prior: str | None, label: str | None) -> tuple[str, int | None]:
    """(prior kind, class index) for /sample's `prior` and `label`, or InvalidRequest saying what
    this model offers."""
    stored = model.prior
    kinds = ["standard", "mixture"] if stored is not None else ["standard"]
    if label is not None:
        labels = model.card.labels or []
        if not labels or stored is None or not stored.classes:
            raise InvalidRequest(
                f"model {model.name!r} has no class-conditional priors; leave out 'label'", {"labels": labels}
            )
        if label in labels:
            index = labels.index(label)
        elif label.isdigit() and int(label) < len(labels):
            index = int(label)
        else:
            raise InvalidRequest(
                f"query parameter 'label': {label!r} is not a class of model {model.name!r}; allowed: "
                f"{', '.join(labels)} (or their index 0..{len(labels) - 1})",
                {"labels": labels},
            )
        if prior == "standard":
            raise InvalidRequest("'label' draws from that class's prior; leave out 'prior' or set it to mixture")
        return "mixture", index
    kind = prior or model.card.prior.default
    if kind not in kinds:
        raise InvalidRequest(
            f"query parameter 'prior': model {model.name!r} has no stored {kind} prior; allowed: {', '.join(kinds)}",
            {"allowed": kinds},
        )
    return kind, None


_unseeded = threading.local()


def generator(seed: int | None) -> np.random.Generator:
    """default_rng(seed) for a seed; without one, this thread's generator, seeded once from the
    OS: gathering fresh entropy per request cost about as much as drawing one latent."""
    if seed is not None:
        return np.random.default_rng(seed)
    rng = getattr(_unseeded, "rng", None)
    if rng is None or _unseeded.pid != os.getpid():  # a forked worker draws its own stream
        rng = _unseeded.rng = np.random.default_rng()
        _unseeded.pid = os.getpid()
    return rng


def draw_latents(
    model: LoadedModel, n: int, seed: int | None, temperature: float, prior: str = "standard", label: int | None = None
) -> np.ndarray:
    """What /sample decodes: z ~ N(0, T^2 I), or the stored mixture (one class's, with a label)
    with its spread scaled by T; the same seed gives the same latents."""
    if prior == "standard" or model.prior is None:
        return prior_latents(n, model.latent_shape, seed, temperature)
    mixture = model.prior.mixture if label is None else model.prior.classes[label]
    return mixture.sample(n, generator(seed), temperature).reshape(n, *model.latent_shape)


def prior_latents(n: int, latent_shape: tuple[int, ...], seed: int | None, temperature: float) -> np.ndarray:
    """z ~ N(0, T^2 I), [n, *latent_shape] float32; the same seed gives the same latents."""
    rng = generator(seed)
    return rng.standard_normal((n, *latent_shape), dtype=np.float32) * np.float32(temperature)


def posterior_sample(encoded: Encoded, seed: int | None) -> np.ndarray:
    """z = mu + sigma * eps, eps ~ N(0, I) from default_rng(seed)."""
    rng = generator(seed)
    eps = rng.standard_normal(encoded.mu.shape, dtype=np.float32)
    return (encoded.mu + np.exp(0.5 * encoded.logvar) * eps).astype(np.float32)


def interpolation(a: np.ndarray, b: np.ndarray, steps: int, method: str) -> np.ndarray:
    """[steps, *latent_shape] from a to b, both included exactly. linear: (1 - t) a + t b; slerp:
    along the great circle between them, scaled between their norms (White 2016, "Sampling
    generative networks"), linear where the two are (anti)parallel."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float64)
    flat_a, flat_b = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    frames = (1 - t)[:, None] * flat_a + t[:, None] * flat_b
    if method == "slerp":
        norm_a, norm_b = np.linalg.norm(flat_a), np.linalg.norm(flat_b)
        if norm_a > 0 and norm_b > 0:
            cosine = np.clip(flat_a @ flat_b / (norm_a * norm_b), -1.0, 1.0)
            omega = np.arccos(cosine)
            if 1e-6 < omega < np.pi - 1e-6:
                unit_a, unit_b = flat_a / norm_a, flat_b / norm_b
                weights_a = np.sin((1 - t) * omega)[:, None] / np.sin(omega)
                weights_b = np.sin(t * omega)[:, None] / np.sin(omega)
                norms = ((1 - t) * norm_a + t * norm_b)[:, None]
                frames = (weights_a * unit_a + weights_b * unit_b) * norms
    walk = frames.astype(np.float32).reshape(steps, *a.shape)
    walk[0], walk[-1] = a, b  # the endpoints decode exactly as /decode decodes them
    return walk


def traversal(origin: np.ndarray, dims: list[int], steps: int, span: float) -> tuple[np.ndarray, np.ndarray]:
    """([len(dims) * steps, *latent_shape] latents, the swept values): row r sweeps flat latent
    dimension dims[r] of `origin` over [-span, span] in `steps` values, the others held."""
    values = np.linspace(-span, span, steps, dtype=np.float32)
    flat = np.repeat(origin.reshape(1, -1), len(dims) * steps, axis=0).astype(np.float32)
    for row, dim in enumerate(dims):
        flat[row * steps : (row + 1) * steps, dim] = values
    return flat.reshape(len(dims) * steps, *origin.shape), values


def sensitivity_probe(origin: np.ndarray, span: float) -> np.ndarray:
    """[2 D, *latent_shape]: origin with each flat dimension set to -span, then to +span."""
    size = origin.size
    flat = np.repeat(origin.reshape(1, -1), 2 * size, axis=0).astype(np.float32)
    index = np.arange(size)
    flat[index, index] = -span
    flat[size + index, index] = span
    return flat.reshape(2 * size, *origin.shape)


def most_active(probe_images: np.ndarray, count: int) -> list[int]:
    """The flat latent dimensions whose sweep changes the decoded image most, most first."""
    size = len(probe_images) // 2
    change = np.abs(probe_images[size:] - probe_images[:size]).reshape(size, -1).mean(axis=1)
    return [int(dim) for dim in np.argsort(-change, kind="stable")[:count]]
