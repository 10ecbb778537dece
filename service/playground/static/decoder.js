// Decoder: one latent (a point picked on the map) decoded by POST /decode?format=json, shown with
// its bars and its curl command; it can become an interpolation endpoint.

import { curlCommand, latestOnly } from "./api.js";
import { pngDataUrl } from "./canvas.js";
import { reshape } from "./latent.js";
import { roundLatent } from "./interpolate.js";
import { $, panelStatus, renderBars } from "./ui.js";

export function createDecoderPanel(app) {
  const section = $("#decoder");
  const status = panelStatus(section);
  const image = $("#decoder-image", section);
  const caption = $("#decoder-caption", section);
  const bars = $("#decoder-latent", section);
  const curl = $("#decoder-curl", section);
  const toA = $("#decoder-to-a", section);
  const toB = $("#decoder-to-b", section);
  let shown = null;
  let generation = 0;

  const decode = latestOnly((latents, model) =>
    app.api.request("/decode", {
      method: "POST",
      query: { model: model.name, format: "json" },
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ latents }),
      onRetry: status.retrying,
    }),
  );

  app.on("decoder", async ({ latent, source }) => {
    const model = app.model;
    const sentFor = generation;
    const rounded = roundLatent(latent);
    const latents = [reshape(rounded, model.latent_shape)];
    const body = await status.run(() => decode(latents, model), { waiting: "decoding" });
    if (!body || sentFor !== generation) return;
    image.src = pngDataUrl(body.images[0]);
    image.alt = `decoded ${source}`;
    caption.textContent = source;
    renderBars(bars, rounded);
    curl.textContent = curlCommand(app.origin, "/decode", { model: model.name, format: "json" }, { json: { latents } });
    shown = { latent: rounded, image: body.images[0], source };
    toA.disabled = toB.disabled = false;
    section.dataset.state = "ready";
  });

  for (const [button, slot] of [
    [toA, "A"],
    [toB, "B"],
  ]) {
    button.addEventListener("click", () => shown && app.emit("endpoint", { slot, ...shown }));
  }

  app.on("model", () => {
    generation += 1;
    shown = null;
    toA.disabled = toB.disabled = true;
    image.removeAttribute("src");
    caption.textContent = "Click a point on the map, or move there with the arrow keys and press Enter.";
    bars.replaceChildren();
    curl.textContent = "";
    section.dataset.state = "empty";
  });
}
