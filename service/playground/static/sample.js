// Sample: POST /sample?n=..&seed=..&temperature=..&model=..[&prior=..][&label=..] -> one PNG grid.
// The seed is always sent, so the grid on screen is the one the "copy as curl" command downloads.
// The prior control shows for a model that stores a mixture (its card's files.prior), the class
// control for one that also stores class priors (prior.class_conditional, with labels).

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

/**
 * The prior control's options for a model, or null where it stores no mixture (no card
 * `files.prior`) or this /sample has no `prior`. "" leaves `prior` out, so the card's
 * `prior.default` applies; with a class chosen the class's mixture is drawn, and standard is refused.
 */
export function priorChoices(info, parameters, classChosen = false) {
  const card = info?.card ?? {};
  if (!parameters?.prior || !card.files?.prior) return null;
  const fallback = card.prior?.default ?? "standard";
  return [
    { value: "", text: classChosen ? "default (the class's mixture)" : `default (${fallback})`, disabled: false },
    { value: "standard", text: "standard N(0, I)", disabled: classChosen },
    { value: "mixture", text: "mixture (stored)", disabled: false },
  ];
}

/**
 * The class control's options, or null where the model has no class priors (card
 * `prior.class_conditional` and `labels`, beside a stored mixture) or this /sample has no `label`.
 * Values are the class names (/sample takes a name or its index).
 */
export function classChoices(info, parameters) {
  const card = info?.card ?? {};
  const labels = info?.labels ?? card.labels ?? [];
  if (!parameters?.label || !card.files?.prior || !card.prior?.class_conditional || labels.length === 0) return null;
  return [{ value: "", text: "any" }, ...labels.map((name) => ({ value: String(name), text: String(name) }))];
}

/** The /sample query: optional prior and label only when chosen (a class never with the standard prior). */
export function sampleQuery({ n, seed, temperature, model, prior = "", label = "" }) {
  const params = { n, seed, temperature, model };
  if (label !== "") params.label = label;
  if (prior !== "" && !(label !== "" && prior === "standard")) params.prior = prior;
  return params;
}

/** The grid's alt text: "16 samples from mnist, class 7, mixture prior, seed 3, temperature 1". */
export function gridDescription(params) {
  const parts = [`${params.n} samples from ${params.model}`];
  if (params.label !== undefined) parts.push(`class ${params.label}`);
  if (params.prior !== undefined) parts.push(`${params.prior} prior`);
  parts.push(`seed ${params.seed}`, `temperature ${params.temperature}`);
  return parts.join(", ");
}

function fillSelect(select, choices) {
  const kept = select.value;
  select.replaceChildren(
    ...(choices ?? []).map(({ value, text, disabled }) => Object.assign(new Option(text, value), { disabled: Boolean(disabled) })),
  );
  const usable = (choices ?? []).some((choice) => choice.value === kept && !choice.disabled);
  select.value = usable ? kept : "";
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
    return sampleQuery({
      n: n.value,
      seed: seed.value,
      temperature: temperature.value,
      model: app.model.name,
      label: labelField.hidden ? "" : label.value,
      prior: priorField.hidden ? "" : prior.value,
    });
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
    grid.alt = gridDescription(params);
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
    if (event.target === label) fillPriors(app.model);
    soon();
  });

  // A class draws from its own mixture: standard is then not offered (/sample would refuse it).
  function fillPriors(info) {
    const choices = priorChoices(info, parameters, !labelField.hidden && label.value !== "");
    priorField.hidden = choices === null;
    if (prior.value === "standard" && choices?.[1].disabled) prior.value = "mixture";
    fillSelect(prior, choices);
  }
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
    // Each model starts from its own defaults: any class, the card's default prior.
    const classes = classChoices(info, parameters);
    labelField.hidden = classes === null;
    label.replaceChildren();
    fillSelect(label, classes);
    prior.replaceChildren();
    fillPriors(info);
    refresh();
  });
}
