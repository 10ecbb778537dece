// The model picker and the model card panel: GET /models (every loaded model, its shapes, labels,
// limits and card) and GET /openapi.json (which optional parameters this service version has).
// Pure helpers first (node tests them), then the DOM.

/** "colour 64×64" or "grayscale 28×28" from an image_shape [C, H, W]. */
export function describeImage([channels, height, width]) {
  return `${channels === 3 ? "colour" : "grayscale"} ${height}×${width}`;
}

/** "[32]" or "[4, 8, 8]". */
export function describeShape(shape) {
  return `[${shape.join(", ")}]`;
}

export function formatValue(value) {
  if (typeof value === "number") {
    if (Number.isInteger(value)) return value.toLocaleString("en");
    const magnitude = Math.abs(value);
    if (magnitude !== 0 && (magnitude < 0.001 || magnitude >= 1e6)) return value.toExponential(3);
    return String(Number(value.toPrecision(4)));
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

const SHORT_TEXT = 80;
const SHORT_LIST = 12;

/**
 * The card's `metrics` as [label, value] rows: numbers, booleans, short text and short lists of
 * numbers, nested objects as "a · b" labels; long text (commands) is left out.
 */
export function metricRows(metrics, prefix = "") {
  if (!metrics || typeof metrics !== "object") return [];
  const rows = [];
  for (const [key, value] of Object.entries(metrics)) {
    const label = (prefix ? `${prefix} · ` : "") + key.replaceAll("_", " ");
    if (value === null || value === undefined) continue;
    if (Array.isArray(value)) {
      if (value.length <= SHORT_LIST && value.every((x) => typeof x === "number")) rows.push([label, value.map(formatValue).join(", ")]);
    } else if (typeof value === "object") {
      rows.push(...metricRows(value, label));
    } else if (typeof value !== "string" || value.length <= SHORT_TEXT) {
      rows.push([label, formatValue(value)]);
    }
  }
  return rows;
}

/** The /sample query parameters this service documents (so `label` and `prior` show only once they exist). */
export function sampleParameters(openapi) {
  const parameters = openapi?.paths?.["/sample"]?.post?.parameters ?? [];
  return Object.fromEntries(parameters.filter((p) => p.in === "query").map((p) => [p.name, p.schema ?? {}]));
}

/** Whether the service has an endpoint (e.g. /score, not there yet). */
export function hasPath(openapi, path) {
  return Boolean(openapi?.paths?.[path]);
}

/** The facts shown above the figures: [label, value] rows. */
export function cardFacts(info) {
  const card = info.card ?? {};
  const facts = [
    ["name", info.name],
    ["version", card.version],
    ["dataset", card.dataset],
    ["images", describeImage(info.image_shape)],
    ["latent", describeShape(info.latent_shape)],
    ["likelihood", card.likelihood],
    ["preprocessing", card.preprocessing],
    ["classes", info.labels?.length ? info.labels.join(", ") : null],
    ["runs on", info.provider],
    ["most per /sample", info.limits?.max_sample_n],
    ["most per upload", info.limits?.max_upload_images],
  ];
  return facts.filter(([, value]) => value !== null && value !== undefined).map(([label, value]) => [label, formatValue(value)]);
}

/** Loads what every panel needs to know about the service. */
export async function loadService(api, status) {
  const [list, openapi] = await Promise.all([
    api.request("/models", { onRetry: status.retrying }),
    api.request("/openapi.json", { onRetry: status.retrying }),
  ]);
  return { defaultModel: list.default, models: list.models, openapi };
}

function definitionList(rows) {
  const list = document.createElement("dl");
  for (const [label, value] of rows) {
    const term = document.createElement("dt");
    term.textContent = label;
    const detail = document.createElement("dd");
    detail.textContent = value;
    list.append(term, detail);
  }
  return list;
}

export function renderPicker(select, models, chosen) {
  select.replaceChildren(
    ...models.map((info) => {
      const option = document.createElement("option");
      option.value = info.name;
      option.textContent = `${info.name} (${describeImage(info.image_shape)})`;
      option.selected = info.name === chosen;
      return option;
    }),
  );
}

export function renderCard(aside, info) {
  const facts = aside.querySelector(".card-facts");
  const figures = aside.querySelector(".card-figures");
  facts.replaceChildren(definitionList(cardFacts(info)));
  const rows = metricRows(info.card?.metrics);
  figures.replaceChildren(
    rows.length ? definitionList(rows) : Object.assign(document.createElement("p"), { textContent: "This card records no figures (no `metrics`)." }),
  );
  aside.dataset.model = info.name;
  aside.classList.toggle("is-colour", info.image_shape[0] === 3);
}
