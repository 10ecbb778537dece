// Sample: POST /sample?n=..&seed=..&temperature=..&model=.. -> one PNG grid. The seed is always
// sent, so the grid on screen is the one the "copy as curl" command downloads.

import { curlCommand, latestOnly } from "./api.js";
import { sampleParameters } from "./models.js";
import { $, copyText, panelStatus, showBlob } from "./ui.js";

export const MAX_NEW_SEED = 2 ** 31 - 1;

export function newSeed(random = Math.random) {
  return Math.floor(random() * MAX_NEW_SEED);
}

/** The enum values of an OpenAPI parameter schema ({enum} or anyOf/oneOf of {enum}), else []. */
export function enumValues(schema) {
  if (Array.isArray(schema?.enum)) return schema.enum;
  for (const key of ["anyOf", "oneOf"]) {
    for (const option of schema?.[key] ?? []) if (Array.isArray(option.enum)) return option.enum;
  }
  return [];
}

export function createSamplePanel(app) {
  const section = $("#sample");
  const status = panelStatus(section);
  const form = $("#sample-form", section);
  const n = $("#sample-n", section);
  const seed = $("#sample-seed", section);
  const temperature = $("#sample-temperature", section);
  const temperatureValue = $("#sample-temperature-value", section);
  const labelField = $("#sample-label-field", section);
  const label = $("#sample-label", section);
  const priorField = $("#sample-prior-field", section);
  const prior = $("#sample-prior", section);
  const grid = $("#sample-grid", section);
  const curl = $("#sample-curl", section);
  const copyButton = $("#sample-copy", section);
  const parameters = sampleParameters(app.service.openapi);
  let generation = 0;
  let timer = null;

  function query() {
    if (!seed.value || !Number.isInteger(Number(seed.value))) seed.value = String(newSeed());
    const params = { n: n.value, seed: seed.value, temperature: temperature.value, model: app.model.name };
    if (!labelField.hidden && label.value !== "") params.label = label.value;
    if (!priorField.hidden && prior.value !== "") params.prior = prior.value;
    return params;
  }

  const fetchGrid = latestOnly((params) =>
    app.api.request("/sample", { method: "POST", query: params, expect: "blob", onRetry: status.retrying }),
  );

  async function refresh() {
    clearTimeout(timer);
    const params = query();
    const sentFor = generation;
    curl.textContent = curlCommand(app.origin, "/sample", params, { output: "samples.png" });
    const blob = await status.run(() => fetchGrid(params), { waiting: "sampling" });
    if (!blob || sentFor !== generation) return;
    showBlob(grid, blob);
    grid.alt = `${params.n} samples from ${params.model}, seed ${params.seed}, temperature ${params.temperature}`;
    grid.dataset.seed = params.seed;
    section.dataset.state = "ready";
  }

  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  form.addEventListener("input", (event) => {
    if (event.target === temperature) temperatureValue.textContent = Number(temperature.value).toFixed(2);
    soon();
  });
  $("#sample-new-seed", section).addEventListener("click", () => {
    seed.value = String(newSeed());
    refresh();
  });
  copyButton.addEventListener("click", async () => {
    const copied = await copyText(curl.textContent, curl);
    status.say(copied ? "curl command copied" : "selected: copy it with Ctrl+C");
  });

  app.on("model", (info) => {
    generation += 1;
    n.max = String(info.limits?.max_sample_n ?? 1024);
    if (Number(n.value) > Number(n.max)) n.value = n.max;
    // label and prior exist only on a service whose /sample documents them.
    const labels = info.labels ?? [];
    labelField.hidden = !(parameters.label && labels.length);
    const byIndex = parameters.label?.type === "integer";
    label.replaceChildren(
      new Option("any", ""),
      ...labels.map((name, index) => new Option(name, byIndex ? String(index) : name)),
    );
    const priors = enumValues(parameters.prior);
    priorField.hidden = priors.length === 0;
    prior.replaceChildren(new Option("default", ""), ...priors.map((value) => new Option(String(value), String(value))));
    refresh();
  });
}
