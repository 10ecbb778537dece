// Latent map. A map position (u, v) is always the latent mean + u * pc1 + v * pc2, decoded on
// hover (POST /decode); a click (or Enter) sends it to the decoder panel. Where the points and
// the basis come from:
// - the model's stored projection (GET /models/{name}/projection, written at export by
//   `python -m training project`): its test set's encoder means, PCA of all of them, 2,000 of
//   them drawn and coloured by class;
// - else (a packaged model without one) what the API can give: 256 images the model samples
//   (POST /sample?n=256&seed=0&format=json), encoded back (POST /encode, mu), PCA computed here.

import { latestOnly } from "./api.js";
import { base64ToBlob, pngDataUrl } from "./canvas.js";
import { extent, flatten, pca2, planePoint, reshape } from "./latent.js";
import { $, panelStatus, svgElement } from "./ui.js";

export const MAP_SAMPLES = 256;
export const MAP_SEED = 0;
export const CLASS_COLOURS = 10; // style.css has .class-0 ... .class-9; more classes reuse them
const SIZE = 300; // the plot's viewBox side
const KEY_STEP = 1 / 40; // of the plot per arrow key press (Shift: 4x)

/** Plot coordinates <-> (u, v) for an extent (v grows upwards). */
export function plotScale({ u, v }, size = SIZE) {
  return {
    toPlot: ([a, b]) => [((a - u[0]) / (u[1] - u[0])) * size, size - ((b - v[0]) / (v[1] - v[0])) * size],
    fromPlot: ([x, y]) => [u[0] + (x / size) * (u[1] - u[0]), v[0] + ((size - y) / size) * (v[1] - v[0])],
  };
}

/** The CSS class that colours points of class `index` (none for unlabelled points). */
export function classColour(index) {
  return Number.isInteger(index) && index >= 0 ? `class-${index % CLASS_COLOURS}` : "";
}

/** The index of the point nearest to (u, v), or -1 for no points. */
export function nearestPoint(points, [u, v]) {
  let best = -1;
  let bestDistance = Infinity;
  points.forEach(([a, b], i) => {
    const distance = (a - u) ** 2 + (b - v) ** 2;
    if (distance < bestDistance) [best, bestDistance] = [i, distance];
  });
  return best;
}

/**
 * A stored projection (the route's JSON, docs/model-card.md) as the map's basis and points; throws
 * on one that does not fit the model's latent size.
 */
export function storedMap(projection, latentDim) {
  const { mean, components, points } = projection;
  if (!Array.isArray(mean) || mean.length !== latentDim || components?.length !== 2 || components.some((c) => c.length !== latentDim)) {
    throw new Error(`the stored projection does not fit this model's ${latentDim} latent values`);
  }
  const labels = Array.isArray(projection.labels) && projection.labels.length ? projection.labels : null;
  const classes = labels && Array.isArray(projection.point_labels) ? projection.point_labels : null;
  const [first, second] = projection.explained_variance_ratio ?? [0, 0];
  const percent = (share) => `${(100 * share).toFixed(1)}%`;
  return {
    source: "projection",
    points,
    classes,
    labels,
    point: (u, v) => planePoint(mean, components, u, v),
    axes: `pc1 explains ${percent(first)} and pc2 ${percent(second)} of the test means' variance`,
    about:
      `Each point is the encoder mean of one of ${points.length.toLocaleString("en")} of the ` +
      `${(projection.test_images ?? points.length).toLocaleString("en")} test images, placed by the first two principal ` +
      `components of all their means (computed at export, GET /models/${projection.model}/projection)` +
      (classes ? "; colours are classes." : "."),
  };
}

export function createMapPanel(app) {
  const section = $("#map");
  const status = panelStatus(section);
  const plot = $("#map-plot", section);
  const preview = $("#map-preview", section);
  const coordinates = $("#map-coordinates", section);
  const about = $("#map-source", section);
  const legend = $("#map-legend", section);
  const maps = new Map(); // model name -> its map, built once
  let current = null; // a map ({points, classes, labels, point, axes, about}) with its model and scale
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

  async function sampledMap(model) {
    const n = Math.min(MAP_SAMPLES, model.limits?.max_sample_n ?? MAP_SAMPLES);
    const sampled = await app.api.request("/sample", {
      method: "POST",
      query: { n, seed: MAP_SEED, model: model.name, format: "json" },
      onRetry: status.retrying,
    });
    const means = await encodeMeans(sampled.images, model);
    const pca = pca2(means);
    const [first, second] = pca.variances;
    return {
      source: "samples",
      points: means.map(pca.project),
      classes: null,
      labels: null,
      point: pca.point,
      axes: `pc1 variance ${first.toFixed(2)}, pc2 variance ${second.toFixed(2)}`,
      about:
        `No stored projection for this model: each point is the encoder mean (/encode) of one of ${n} images ` +
        `the model sampled (/sample?n=${n}&seed=${MAP_SEED}), placed by the first two principal components of those means, computed here.`,
    };
  }

  const hasStored = (model) => Boolean(model.card?.files?.projection) && Boolean(app.service?.openapi?.paths?.["/models/{name}/projection"]);

  async function build(model) {
    const map = hasStored(model)
      ? storedMap(await app.api.request(`/models/${encodeURIComponent(model.name)}/projection`, { onRetry: status.retrying }), model.latent_shape.reduce((a, b) => a * b, 1))
      : await sampledMap(model);
    return { ...map, model, scale: plotScale(extent(map.points)) };
  }

  function renderLegend(map) {
    legend.hidden = !map.classes;
    legend.replaceChildren(
      ...(map.classes ? map.labels : []).map((label, i) => {
        const item = document.createElement("li");
        const swatch = document.createElement("span");
        swatch.className = `swatch ${classColour(i)}`;
        swatch.setAttribute("aria-hidden", "true");
        item.append(swatch, document.createTextNode(label));
        return item;
      }),
    );
  }

  function render(map) {
    const dots = map.points.map(([u, v], i) => {
      const [x, y] = map.scale.toPlot([u, v]);
      const colour = map.classes ? classColour(map.classes[i]) : "";
      return svgElement("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: map.classes ? 1.8 : 2.4, class: `point ${colour}`.trim() });
    });
    plot.classList.toggle("is-classed", Boolean(map.classes));
    plot.replaceChildren(
      svgElement("rect", { x: 0, y: 0, width: SIZE, height: SIZE, class: "backdrop" }),
      ...dots,
      svgElement("circle", { cx: cursor[0], cy: cursor[1], r: 6, class: "cursor" }),
    );
    plot.dataset.points = String(map.points.length);
    plot.dataset.source = map.source;
    plot.setAttribute("aria-label", `latent map of ${map.points.length} points: move with the arrow keys, Enter to decode the point`);
    $("#map-axes", section).textContent = map.axes;
    about.textContent = map.about;
    renderLegend(map);
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
    return { u, v, latent: current.point(u, v) };
  }

  function describe(map, u, v) {
    const place = `u ${u.toFixed(2)}, v ${v.toFixed(2)}`;
    if (!map.classes) return place;
    const nearest = nearestPoint(map.points, [u, v]);
    return nearest < 0 ? place : `${place}, nearest test image: ${map.labels[map.classes[nearest]] ?? "?"}`;
  }

  async function hover(point) {
    if (!current) return;
    const map = current;
    cursor = point;
    plot.querySelector(".cursor")?.setAttribute("cx", point[0].toFixed(1));
    plot.querySelector(".cursor")?.setAttribute("cy", point[1].toFixed(1));
    const { u, v, latent } = latentAt(point);
    const sentFor = generation;
    const body = await status.run(() => decodeAt(latent, map.model), { waiting: "decoding" });
    if (!body || sentFor !== generation) return;
    preview.src = pngDataUrl(body.images[0]);
    preview.alt = `decoded at u ${u.toFixed(2)}, v ${v.toFixed(2)}`;
    coordinates.textContent = describe(map, u, v);
    Object.assign(coordinates.dataset, { u: String(u), v: String(v) });
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
    legend.hidden = true;
    section.dataset.state = "building";
    if (!maps.has(model.name)) {
      const waiting = hasStored(model) ? "loading the test set's projection" : `sampling and encoding ${MAP_SAMPLES} images`;
      const built = await status.run(() => build(model), { waiting });
      if (!built) {
        if (sentFor === generation) section.dataset.state = "error";
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
