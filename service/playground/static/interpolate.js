// Interpolate: two endpoints (a seed, an image file, the drawing, or a point from the decoder
// panel) and their latents (/sample?n=1&seed=S&format=json's `latents`, or /encode's mu). The walk
// is one POST /interpolate (linear or slerp) where the service has it; on one without it, a straight
// line computed here with every frame decoded in one POST /decode?format=json.

import { curlCommand, latestOnly } from "./api.js";
import { pngDataUrl } from "./canvas.js";
import { flatten, lerpPath, reshape } from "./latent.js";
import { hasPath } from "./models.js";
import { enumValues } from "./sample.js";
import { $, panelStatus, prefersReducedMotion, showBlob } from "./ui.js";

export const FRAME_MS = 120;
const DIGITS = 5; // latents are sent rounded, so the curl command shown is exactly what was sent

export function roundLatent(latent, digits = DIGITS) {
  return latent.map((x) => Number(x.toFixed(digits)));
}

/** Ping-pong order of frame indices for the animation: 0..n-1 then back, without repeating the ends. */
export function pingPong(frames) {
  const forward = Array.from({ length: frames }, (_, i) => i);
  return frames < 3 ? forward : [...forward, ...forward.slice(1, -1).reverse()];
}

export function createInterpolatePanel(app) {
  const section = $("#interpolate");
  const status = panelStatus(section);
  const steps = $("#interp-steps", section);
  const strip = $("#interp-strip", section);
  const frame = $("#interp-frame", section);
  const slider = $("#interp-slider", section);
  const position = $("#interp-position", section);
  const play = $("#interp-play", section);
  const curl = $("#interp-curl", section);
  const methodField = $("#interp-method-field", section);
  const method = $("#interp-method", section);
  const how = $("#interp-how", section);
  // The service's own walk, where it has one (its methods from the schema).
  const walkParameters = app.service.openapi?.paths?.["/interpolate"]?.post?.parameters ?? [];
  const serviceWalks = hasPath(app.service.openapi, "/interpolate");
  const methods = enumValues(walkParameters.find((p) => p.name === "method")?.schema);
  const slots = {
    A: { element: $("#endpoint-a", section), value: null },
    B: { element: $("#endpoint-b", section), value: null },
  };
  let images = [];
  let timer = null;
  let generation = 0;
  let lastDrawing = null;

  function setEndpoint(name, value) {
    const slot = slots[name];
    slot.value = value;
    const thumbnail = slot.element.querySelector(".endpoint-image");
    if (value.file) showBlob(thumbnail, value.file);
    else thumbnail.src = pngDataUrl(value.image);
    thumbnail.alt = `endpoint ${name}: ${value.source}`;
    slot.element.querySelector(".endpoint-source").textContent = value.source;
    if (slots.A.value && slots.B.value) walk();
  }

  async function fromSeed(name) {
    const seed = slots[name].element.querySelector(".endpoint-seed").value || "0";
    const model = app.model;
    const sentFor = generation;
    const body = await status.run(
      () => app.api.request("/sample", { method: "POST", query: { n: 1, seed, model: model.name, format: "json" }, onRetry: status.retrying }),
      { waiting: `sampling seed ${seed}` },
    );
    if (body && sentFor === generation) setEndpoint(name, { latent: flatten(body.latents[0]), image: body.images[0], source: `seed ${seed}` });
  }

  async function fromFile(name, file) {
    const model = app.model;
    const sentFor = generation;
    const form = new FormData();
    form.append("file", file, file.name);
    const body = await status.run(
      () => app.api.request("/encode", { method: "POST", query: { model: model.name }, body: form, onRetry: status.retrying }),
      { waiting: `encoding ${file.name}` },
    );
    if (body && sentFor === generation) setEndpoint(name, { latent: flatten(body.results[0].mu), file, source: file.name });
  }

  const jsonPost = (query, body) => ({
    method: "POST",
    query,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    onRetry: status.retrying,
  });
  const fetchWalk = latestOnly((path, query, body) => app.api.request(path, jsonPost(query, body)));

  /** The request for a walk: the service's /interpolate, or frames computed here for /decode. */
  function walkRequest(model, count) {
    const [a, b] = [slots.A.value.latent, slots.B.value.latent].map((z) => roundLatent(z));
    const shaped = (z) => reshape(z, model.latent_shape);
    if (serviceWalks) {
      const query = { steps: count, method: method.value || undefined, model: model.name, format: "json" };
      return { path: "/interpolate", query, body: { latents: [shaped(a), shaped(b)] } };
    }
    const frames = lerpPath(a, b, count).map((z) => shaped(roundLatent(z)));
    return { path: "/decode", query: { model: model.name, format: "json" }, body: { latents: frames } };
  }

  async function walk() {
    const model = app.model;
    const sentFor = generation;
    const count = Math.max(2, Math.min(Number(steps.value) || 10, Number(steps.max), model.limits?.max_sample_n ?? 64));
    const { path, query, body } = walkRequest(model, count);
    curl.textContent = curlCommand(app.origin, path, query, { json: body });
    const answer = await status.run(() => fetchWalk(path, query, body), { waiting: `decoding ${count} frames` });
    if (!answer || sentFor !== generation) return;
    showFrames(answer.images);
  }

  function showFrames(pngs) {
    images = pngs.map(pngDataUrl);
    strip.replaceChildren(
      ...images.map((src, i) => {
        const item = document.createElement("li");
        const img = document.createElement("img");
        img.src = src;
        img.alt = `frame ${i + 1} of ${images.length}`;
        item.append(img);
        return item;
      }),
    );
    slider.max = String(images.length - 1);
    showFrame(0);
    section.dataset.state = "ready";
    section.dataset.frames = String(images.length);
    if (!prefersReducedMotion()) startPlaying();
  }

  function showFrame(index) {
    slider.value = String(index);
    frame.src = images[index];
    frame.alt = `frame ${index + 1} of ${images.length}`;
    const t = images.length > 1 ? index / (images.length - 1) : 0;
    position.textContent = `frame ${index + 1} / ${images.length}, t = ${t.toFixed(2)}`;
    strip.querySelectorAll("li").forEach((item, i) => item.classList.toggle("is-current", i === index));
  }

  function startPlaying() {
    stopPlaying();
    const order = pingPong(images.length);
    let step = order.indexOf(Number(slider.value));
    timer = setInterval(() => {
      step = (step + 1) % order.length;
      showFrame(order[step]);
    }, FRAME_MS);
    play.textContent = "Pause";
    play.setAttribute("aria-pressed", "true");
  }

  function stopPlaying() {
    clearInterval(timer);
    timer = null;
    play.textContent = "Play";
    play.setAttribute("aria-pressed", "false");
  }

  play.addEventListener("click", () => (timer ? stopPlaying() : images.length && startPlaying()));
  slider.addEventListener("input", () => {
    stopPlaying();
    if (images.length) showFrame(Number(slider.value));
  });
  $("#interp-run", section).addEventListener("click", () => slots.A.value && slots.B.value && walk());
  steps.addEventListener("change", () => slots.A.value && slots.B.value && walk());
  method.addEventListener("change", () => slots.A.value && slots.B.value && walk());
  methodField.hidden = !serviceWalks || methods.length === 0;
  method.replaceChildren(...methods.map((name) => new Option(name, name)));
  how.textContent = serviceWalks
    ? "The walk: one POST /interpolate?format=json with both latents."
    : "The walk: a straight line computed here, every frame decoded by one POST /decode?format=json.";

  for (const [name, slot] of Object.entries(slots)) {
    slot.element.querySelector(".endpoint-use-seed").addEventListener("click", () => fromSeed(name));
    slot.element.querySelector(".endpoint-seed").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        fromSeed(name);
      }
    });
    const fileInput = slot.element.querySelector(".endpoint-file");
    fileInput.addEventListener("change", () => {
      const [file] = fileInput.files;
      if (file) fromFile(name, file);
      fileInput.value = "";
    });
    slot.element.querySelector(".endpoint-use-drawing").addEventListener("click", () => lastDrawing && setEndpoint(name, lastDrawing));
  }

  app.on("drawing", (value) => {
    lastDrawing = value;
    for (const slot of Object.values(slots)) slot.element.querySelector(".endpoint-use-drawing").disabled = false;
  });
  app.on("endpoint", ({ slot, ...value }) => setEndpoint(slot, value));
  app.on("model", () => {
    generation += 1;
    stopPlaying();
    lastDrawing = null;
    images = [];
    strip.replaceChildren();
    frame.removeAttribute("src");
    position.textContent = "";
    for (const slot of Object.values(slots)) {
      slot.value = null;
      slot.element.querySelector(".endpoint-use-drawing").disabled = true;
      slot.element.querySelector(".endpoint-image").removeAttribute("src");
    }
    // Latents of another model mean nothing here: start again from the two seeds.
    fromSeed("A").then(() => fromSeed("B"));
  });
}
