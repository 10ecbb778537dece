// The playground's entry point: load the service's models and schema, then wire the panels
// together. Panels talk through `app`: app.emit("model" | "drawing" | "endpoint" | "decoder", detail).

import { createClient } from "./api.js";
import { createDecoderPanel } from "./decoder.js";
import { createDrawPanel } from "./draw.js";
import { createInterpolatePanel } from "./interpolate.js";
import { createMapPanel } from "./map.js";
import { hasPath, loadService, renderCard, renderPicker } from "./models.js";
import { createSamplePanel } from "./sample.js";
import { $, panelStatus } from "./ui.js";

function createApp() {
  const bus = new EventTarget();
  return {
    api: createClient(),
    origin: window.location.origin,
    service: null,
    model: null,
    hasScore: false,
    emit: (type, detail) => bus.dispatchEvent(new CustomEvent(type, { detail })),
    on: (type, listener) => bus.addEventListener(type, (event) => listener(event.detail)),
  };
}

async function main() {
  const app = createApp();
  const header = $("#top");
  const status = panelStatus(header);
  const service = await status.run(() => loadService(app.api, status), { waiting: "loading the models" });
  if (!service) return; // the header says why
  if (service.models.length === 0) {
    status.fail(new Error("the service has no models loaded"));
    return;
  }
  app.service = service;
  app.hasScore = hasPath(service.openapi, "/score");

  createDrawPanel(app);
  createSamplePanel(app);
  createInterpolatePanel(app);
  createMapPanel(app);
  createDecoderPanel(app);

  const picker = $("#model-picker");
  const choose = (name) => {
    const info = service.models.find((m) => m.name === name) ?? service.models.find((m) => m.name === service.defaultModel) ?? service.models[0];
    app.model = info;
    picker.value = info.name;
    renderCard($("#card"), info);
    document.body.dataset.model = info.name;
    document.body.classList.toggle("is-colour", info.image_shape[0] === 3);
    const url = new URL(window.location.href);
    url.searchParams.set("model", info.name);
    window.history.replaceState(null, "", url);
    app.emit("model", info);
  };
  const requested = new URLSearchParams(window.location.search).get("model");
  renderPicker(picker, service.models, requested ?? service.defaultModel);
  picker.disabled = false;
  picker.addEventListener("change", () => choose(picker.value));
  choose(requested ?? service.defaultModel);
  document.body.dataset.ready = "true";
}

main();
