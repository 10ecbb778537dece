// Draw: a canvas for mouse, pen and touch (pointer events). When a stroke ends, or an image file is
// picked or dropped, the image goes to POST /reconstruct?format=json (the model's input as the
// service preprocessed it, the reconstruction, its MSE) and POST /encode (mu and logvar per
// dimension), and to POST /score once the service has it.

import { curlCommand, latestOnly } from "./api.js";
import { Drawing, canvasSize, paint, pngDataUrl, relativePoint, themeFor, toPngBlob, uploadSize } from "./canvas.js";
import { flatten, sigmaFromLogvar } from "./latent.js";
import { formatValue, hasPath } from "./models.js";
import { $, panelStatus, renderBars } from "./ui.js";

const DRAWING_NAME = "drawing.png";

/** The numbers a /score answer holds, as "name value" text (its shape is not fixed yet). */
export function scoreText(body) {
  const result = body?.results?.[0] ?? body ?? {};
  return Object.entries(result)
    .filter(([, value]) => typeof value === "number")
    .map(([key, value]) => `${key.replaceAll("_", " ")} ${formatValue(value)}`)
    .join(", ");
}

export function createDrawPanel(app) {
  const section = $("#draw");
  const status = panelStatus(section);
  const canvas = $("#draw-canvas", section);
  const context = canvas.getContext("2d");
  const brush = $("#draw-brush", section);
  const colour = $("#draw-colour", section);
  const fileInput = $("#draw-file", section);
  const dropZone = $("#draw-drop", section);
  const inputImage = $("#draw-input", section);
  const outputImage = $("#draw-output", section);
  const mse = $("#draw-mse", section);
  const bars = $("#draw-latent", section);
  const scoreFigure = $("#draw-score", section);
  const curl = $("#draw-curl", section);
  const drawing = new Drawing();
  let theme = { background: "#000000", ink: "#ffffff", colour: false };
  let generation = 0; // bumped on a model change, so late answers for the old model are dropped
  let sent = 0; // images sent so far

  const repaint = () => paint(context, drawing, theme.background, canvas.width, canvas.height);

  function clearResults() {
    for (const img of [inputImage, outputImage]) img.removeAttribute("src");
    mse.textContent = "";
    bars.replaceChildren();
    delete bars.dataset.dims;
    scoreFigure.querySelector("output").textContent = "";
    section.dataset.state = "empty";
  }

  const submit = latestOnly(async (blob, filename, model) => {
    const form = new FormData();
    form.append("file", blob, filename);
    const query = { model: model.name };
    const onRetry = status.retrying;
    const scoring = app.hasScore ? app.api.request("/score", { method: "POST", query, body: form, onRetry }) : null;
    const [reconstructed, encoded, score] = await Promise.all([
      app.api.request("/reconstruct", { method: "POST", query: { ...query, format: "json" }, body: form, onRetry }),
      app.api.request("/encode", { method: "POST", query, body: form, onRetry }),
      scoring,
    ]);
    return { reconstructed: reconstructed.results[0], encoded: encoded.results[0], score, filename, model };
  });

  function show({ reconstructed, encoded, score, filename, model }) {
    inputImage.src = pngDataUrl(reconstructed.input);
    outputImage.src = pngDataUrl(reconstructed.image);
    mse.textContent = `MSE ${formatValue(reconstructed.mse)}`;
    const mu = flatten(encoded.mu);
    renderBars(bars, mu, sigmaFromLogvar(flatten(encoded.logvar)));
    if (score) scoreFigure.querySelector("output").textContent = scoreText(score);
    curl.textContent = [
      curlCommand(app.origin, "/reconstruct", { model: model.name, format: "json" }, { files: [filename] }),
      curlCommand(app.origin, "/encode", { model: model.name }, { files: [filename] }),
    ].join("\n");
    app.emit("drawing", { latent: mu, image: reconstructed.input, source: filename === DRAWING_NAME ? "the drawing" : filename });
  }

  // data-state is "ready" once the newest image's answer is shown (tests and scripts wait on it).
  async function send(blob, filename, ticket = ++sent) {
    const sentFor = generation;
    const model = app.model;
    section.dataset.state = "waiting";
    const result = await status.run(() => submit(blob, filename, model), { waiting: "encoding and reconstructing" });
    if (sentFor !== generation) return;
    if (result) show(result);
    if (ticket === sent) section.dataset.state = result ? "ready" : "error";
  }

  async function sendDrawing() {
    if (drawing.isEmpty) return clearResults();
    const ticket = ++sent;
    section.dataset.state = "waiting";
    send(await toPngBlob(canvas, uploadSize(canvas, app.model.image_shape)), DRAWING_NAME, ticket);
  }

  // Pointer events cover mouse, pen and touch; capture keeps a stroke going outside the canvas.
  canvas.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    const ink = theme.colour ? colour.value : theme.ink;
    drawing.begin(relativePoint(event.clientX, event.clientY, canvas.getBoundingClientRect()), { ink, width: Number(brush.value) / 100 });
    repaint();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing.current) return;
    const rect = canvas.getBoundingClientRect();
    const coalesced = event.getCoalescedEvents?.() ?? [];
    for (const e of coalesced.length ? coalesced : [event]) drawing.extend(relativePoint(e.clientX, e.clientY, rect));
    repaint();
  });
  const endStroke = () => {
    if (drawing.end()) {
      repaint();
      sendDrawing();
    }
  };
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  $("#draw-undo", section).addEventListener("click", () => {
    if (drawing.undo()) {
      repaint();
      sendDrawing();
    }
  });
  $("#draw-clear", section).addEventListener("click", () => {
    drawing.clear();
    repaint();
    clearResults();
    status.clearError();
  });
  document.addEventListener("keydown", (event) => {
    const editing = event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement;
    if ((event.ctrlKey || event.metaKey) && event.key === "z" && !editing && drawing.undo()) {
      event.preventDefault();
      repaint();
      sendDrawing();
    }
  });

  // An image file instead of a drawing: picked, or dropped on the canvas.
  fileInput.addEventListener("change", () => {
    const [file] = fileInput.files;
    if (file) send(file, file.name);
    fileInput.value = ""; // picking the same file again still sends it
  });
  // A file dropped beside the canvas must not make the browser leave the page to show it.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
  dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropZone.classList.add("is-dragging");
  });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("is-dragging"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("is-dragging");
    const [file] = event.dataTransfer.files;
    if (file) send(file, file.name);
  });

  app.on("model", (info) => {
    generation += 1;
    theme = themeFor(info);
    Object.assign(canvas, canvasSize(info.image_shape)); // resizing clears the bitmap
    drawing.clear();
    repaint();
    clearResults();
    status.clearError();
    section.querySelector(".colour-only").hidden = !theme.colour;
    scoreFigure.hidden = !app.hasScore;
    canvas.setAttribute("aria-label", `Drawing area for ${info.name}: draw with a mouse, pen or finger; or pick an image file below`);
  });
}
