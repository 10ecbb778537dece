// Latent map: the page cannot reach the test set, so it maps what the API can give it. It samples
// 256 images (POST /sample?n=256&seed=0&format=json), encodes them back (POST /encode, mu), and
// plots those means on their first two principal components (PCA computed here). Hovering at
// (u, v) decodes mean + u * pc1 + v * pc2 (POST /decode); a click sends that latent to the decoder panel.

import { latestOnly } from "./api.js";
import { base64ToBlob, pngDataUrl } from "./canvas.js";
import { extent, flatten, pca2, reshape } from "./latent.js";
import { $, panelStatus, svgElement } from "./ui.js";

export const MAP_SAMPLES = 256;
export const MAP_SEED = 0;
const SIZE = 300; // the plot's viewBox side
const KEY_STEP = 1 / 40; // of the plot per arrow key press (Shift: 4x)

/** Plot coordinates <-> (u, v) for an extent (v grows upwards). */
export function plotScale({ u, v }, size = SIZE) {
  return {
    toPlot: ([a, b]) => [((a - u[0]) / (u[1] - u[0])) * size, size - ((b - v[0]) / (v[1] - v[0])) * size],
    fromPlot: ([x, y]) => [u[0] + (x / size) * (u[1] - u[0]), v[0] + ((size - y) / size) * (v[1] - v[0])],
  };
}

export function createMapPanel(app) {
  const section = $("#map");
  const status = panelStatus(section);
  const plot = $("#map-plot", section);
  const preview = $("#map-preview", section);
  const coordinates = $("#map-coordinates", section);
  const maps = new Map(); // model name -> its map, built once
  let current = null; // {pca, scale, model}
  let cursor = [SIZE / 2, SIZE / 2];
  let generation = 0;

  async function encodeMeans(images, model) {
    const perRequest = model.limits?.max_upload_images ?? 64;
    const means = [];
    for (let start = 0; start < images.length; start += perRequest) {
      const form = new FormData();
      images.slice(start, start + perRequest).forEach((png, i) => form.append("file", base64ToBlob(png), `sample-${start + i}.png`));
      const body = await app.api.request("/encode", { method: "POST", query: { model: model.name }, body: form, onRetry: status.retrying });
      means.push(...body.results.map((result) => flatten(result.mu)));
    }
    return means;
  }

  async function build(model) {
    const n = Math.min(MAP_SAMPLES, model.limits?.max_sample_n ?? MAP_SAMPLES);
    const sampled = await app.api.request("/sample", {
      method: "POST",
      query: { n, seed: MAP_SEED, model: model.name, format: "json" },
      onRetry: status.retrying,
    });
    const means = await encodeMeans(sampled.images, model);
    const pca = pca2(means);
    const points = means.map(pca.project);
    return { model, pca, points, scale: plotScale(extent(points)) };
  }

  function render(map) {
    const dots = map.points.map(([u, v]) => {
      const [x, y] = map.scale.toPlot([u, v]);
      return svgElement("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 2.4, class: "point" });
    });
    plot.replaceChildren(
      svgElement("rect", { x: 0, y: 0, width: SIZE, height: SIZE, class: "backdrop" }),
      ...dots,
      svgElement("circle", { cx: cursor[0], cy: cursor[1], r: 6, class: "cursor" }),
    );
    plot.dataset.points = String(map.points.length);
    const [first, second] = map.pca.variances;
    $("#map-axes", section).textContent = `pc1 variance ${first.toFixed(2)}, pc2 variance ${second.toFixed(2)}`;
  }

  const decodeAt = latestOnly((latent, model) =>
    app.api.request("/decode", {
      method: "POST",
      query: { model: model.name, format: "json" },
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ latents: [reshape(latent, model.latent_shape)] }),
      onRetry: status.retrying,
    }),
  );

  function latentAt(point) {
    const [u, v] = current.scale.fromPlot(point);
    return { u, v, latent: current.pca.point(u, v) };
  }

  async function hover(point) {
    if (!current) return;
    cursor = point;
    plot.querySelector(".cursor")?.setAttribute("cx", point[0].toFixed(1));
    plot.querySelector(".cursor")?.setAttribute("cy", point[1].toFixed(1));
    const { u, v, latent } = latentAt(point);
    const sentFor = generation;
    const body = await status.run(() => decodeAt(latent, current.model), { waiting: "decoding" });
    if (!body || sentFor !== generation) return;
    preview.src = pngDataUrl(body.images[0]);
    preview.alt = `decoded at u ${u.toFixed(2)}, v ${v.toFixed(2)}`;
    coordinates.textContent = `u ${u.toFixed(2)}, v ${v.toFixed(2)}`;
    section.dataset.state = "ready";
  }

  function pick(point) {
    if (!current) return;
    const { u, v, latent } = latentAt(point);
    app.emit("decoder", { latent, source: `map point u ${u.toFixed(2)}, v ${v.toFixed(2)}` });
  }

  const plotPoint = (event) => {
    const rect = plot.getBoundingClientRect();
    return [((event.clientX - rect.left) / rect.width) * SIZE, ((event.clientY - rect.top) / rect.height) * SIZE];
  };
  plot.addEventListener("pointermove", (event) => hover(plotPoint(event)));
  plot.addEventListener("click", (event) => pick(plotPoint(event)));
  plot.addEventListener("keydown", (event) => {
    const step = KEY_STEP * SIZE * (event.shiftKey ? 4 : 1);
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (moves[event.key]) {
      event.preventDefault();
      const [dx, dy] = moves[event.key];
      hover([Math.max(0, Math.min(SIZE, cursor[0] + dx)), Math.max(0, Math.min(SIZE, cursor[1] + dy))]);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      pick(cursor);
    }
  });

  app.on("model", async (model) => {
    generation += 1;
    const sentFor = generation;
    current = null;
    plot.replaceChildren();
    preview.removeAttribute("src");
    coordinates.textContent = "";
    section.dataset.state = "building";
    if (!maps.has(model.name)) {
      const built = await status.run(() => build(model), { waiting: `sampling and encoding ${MAP_SAMPLES} images` });
      if (!built) {
        section.dataset.state = "error";
        return;
      }
      maps.set(model.name, built);
    }
    if (sentFor !== generation) return;
    current = maps.get(model.name);
    cursor = [SIZE / 2, SIZE / 2];
    render(current);
    section.dataset.state = "mapped";
    hover(cursor);
  });
}
