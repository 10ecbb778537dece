// Draw: a canvas for mouse, pen and touch (pointer events). When a stroke ends, or an image file is
// picked or dropped, the image goes to POST /reconstruct?format=json (the model's input as the
// service preprocessed it, the reconstruction, its MSE) and POST /encode (mu and logvar per
// dimension), and, where the service has it, to POST /score (negative ELBO, importance-sampled
// NLL, bits/dim, the test-set percentile and the outlier flag), shown as soon as each answers.

import { curlCommand, latestOnly } from "./api.js";
import { Drawing, canvasSize, paint, pngDataUrl, relativePoint, themeFor, toPngBlob, uploadSize } from "./canvas.js";
import { flatten, sigmaFromLogvar } from "./latent.js";
import { formatValue } from "./models.js";
import { $, panelStatus, renderBars } from "./ui.js";

const DRAWING_NAME = "drawing.png";
const SCORE_IDLE = "draw or pick an image to score it";

/** "1st", "2nd", "3rd", "4th", "11th", "62nd", "100th"; a non-integer takes "th" ("99.6th"). */
export function ordinal(value) {
  if (!Number.isInteger(value)) return `${value}th`;
  const tens = value % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ({ 1: "st", 2: "nd", 3: "rd" }[value % 10] ?? "th");
  return `${value}${suffix}`;
}

/**
 * A test-set percentile (0..100) as words, "62nd": rounded to a whole number, except that a
 * share above 99 (where the outlier flag is decided) keeps one decimal and one above 0 stays above 0.
 */
export function percentileWords(percentile) {
  if (percentile > 99 && percentile < 100) return ordinal(Math.floor(percentile * 10) / 10);
  if (percentile > 0 && percentile < 1) return ordinal(1);
  return ordinal(Math.round(percentile));
}

const oneDecimal = (value) => String(Number(value.toFixed(1)));

/**
 * What /score's answer for one image says, in words: `kind` "typical" | "outlier" | "none" (no
 * test-set table, so no percentile or flag) and `text`.
 */
export function scoreVerdict(result) {
  if (!result || result.percentile === null || result.percentile === undefined) {
    return { kind: "none", text: "no test-set table for this model" };
  }
  if (result.outlier) {
    return { kind: "outlier", text: `outlier: unlike the test set (outlier score ${oneDecimal(result.outlier_score)})` };
  }
  return { kind: "typical", text: `typical for this model (${percentileWords(result.percentile)} percentile)` };
}

/** The figures of a /score answer's first image as [term, value, note] rows. */
export function scoreRows(body) {
  const result = body?.results?.[0];
  if (!result) return [];
  const rows = [
    ["neg ELBO", `${formatValue(result.neg_elbo)} nats`, `reconstruction ${formatValue(result.reconstruction)} + KL ${formatValue(result.kl)}`],
    ["NLL", `${formatValue(result.nll)} nats`, `importance sampled, k = ${body.k}`],
    ["bits/dim", formatValue(result.bits_per_dim), ""],
  ];
  if (result.percentile === null || result.percentile === undefined) {
    rows.push(["test-set percentile", "none", "the model ships no test-set table (scores.npz)"]);
  } else {
    const images = body.table?.images;
    rows.push(["test-set percentile", percentileWords(result.percentile), images ? `of ${formatValue(images)} test images' neg ELBO` : "of the test set's neg ELBO"]);
    rows.push(["outlier score", oneDecimal(result.outlier_score), `flagged as an outlier above ${formatValue(body.outlier_percentile)}`]);
  }
  return rows;
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
  const scoreResult = $("#draw-score-result", section);
  const scoreFlag = $("#draw-score-flag", section);
  const scoreFigures = $("#draw-score-figures", section);
  const scoreSpinner = $(".score-spinner", scoreFigure);
  const scoreStatus = $("#draw-score-status", section);
  const scoreError = $("#draw-score-error", section);
  const curl = $("#draw-curl", section);
  const drawing = new Drawing();
  let theme = { background: "#000000", ink: "#ffffff", colour: false };
  let generation = 0; // bumped on a model change, so late answers for the old model are dropped
  let sent = 0; // images sent so far
  let scoring = 0; // /score requests waiting

  const repaint = () => paint(context, drawing, theme.background, canvas.width, canvas.height);

  function clearResults() {
    for (const img of [inputImage, outputImage]) img.removeAttribute("src");
    mse.textContent = "";
    bars.replaceChildren();
    delete bars.dataset.dims;
    clearScore();
    section.dataset.state = "empty";
  }

  // The score figure: its own spinner and words while /score works, since it may answer after
  // the reconstruction; the result region (aria-live) is announced once it is no longer busy.
  function clearScore() {
    scoreFlag.textContent = SCORE_IDLE;
    scoreFlag.dataset.verdict = "";
    scoreFigures.replaceChildren();
    scoreStatus.textContent = "";
    scoreError.hidden = true;
    scoreError.textContent = "";
    scoreFigure.dataset.state = "empty";
  }

  function scoreBusy(busy) {
    scoring += busy ? 1 : -1;
    scoreSpinner.hidden = scoring === 0;
    scoreResult.setAttribute("aria-busy", String(scoring > 0));
    scoreStatus.textContent = scoring > 0 ? "scoring with importance samples" : "";
  }

  // "ready" or "error" once no newer image's score is still on its way (its own call is counted).
  const settledScore = (state) => (scoring > 1 ? "waiting" : state);

  function showScore(body) {
    const verdict = scoreVerdict(body.results[0]);
    scoreFlag.textContent = verdict.text;
    scoreFlag.dataset.verdict = verdict.kind;
    scoreFigures.replaceChildren(
      ...scoreRows(body).flatMap(([term, value, note]) => {
        const dt = document.createElement("dt");
        dt.textContent = term;
        const dd = document.createElement("dd");
        dd.textContent = value;
        if (note) dd.append(" ", Object.assign(document.createElement("small"), { textContent: note }));
        return [dt, dd];
      }),
    );
    scoreError.hidden = true;
    scoreFigure.dataset.state = settledScore("ready");
  }

  function showScoreError(error) {
    scoreError.textContent = error?.words ?? `error: ${error?.message ?? error}`;
    scoreError.hidden = false;
    scoreFigure.dataset.state = settledScore("error");
  }

  const upload = (blob, filename) => {
    const form = new FormData();
    form.append("file", blob, filename);
    return form;
  };

  const submit = latestOnly(async (blob, filename, model) => {
    const form = upload(blob, filename);
    const query = { model: model.name };
    const onRetry = status.retrying;
    const [reconstructed, encoded] = await Promise.all([
      app.api.request("/reconstruct", { method: "POST", query: { ...query, format: "json" }, body: form, onRetry }),
      app.api.request("/encode", { method: "POST", query, body: form, onRetry }),
    ]);
    return { reconstructed: reconstructed.results[0], encoded: encoded.results[0], filename, model };
  });

  const fetchScore = latestOnly((blob, filename, model) =>
    app.api.request("/score", {
      method: "POST",
      query: { model: model.name },
      body: upload(blob, filename),
      onRetry: ({ attempt, waitS, words }) => {
        scoreStatus.textContent = `${words} in ${waitS.toFixed(1)} s (try ${attempt + 1})`;
      },
    }),
  );

  /** Scores the image beside the reconstruction; a failed score is said in the score figure only. */
  async function score(blob, filename, model, sentFor) {
    scoreBusy(true);
    scoreError.hidden = true;
    scoreFigure.dataset.state = "waiting";
    try {
      const body = await fetchScore(blob, filename, model);
      if (body !== undefined && sentFor === generation) showScore(body);
    } catch (error) {
      if (sentFor === generation && error?.name !== "AbortError") showScoreError(error);
    } finally {
      scoreBusy(false);
    }
  }

  function show({ reconstructed, encoded, filename, model }) {
    inputImage.src = pngDataUrl(reconstructed.input);
    outputImage.src = pngDataUrl(reconstructed.image);
    mse.textContent = `MSE ${formatValue(reconstructed.mse)}`;
    const mu = flatten(encoded.mu);
    renderBars(bars, mu, sigmaFromLogvar(flatten(encoded.logvar)));
    curl.textContent = [
      curlCommand(app.origin, "/reconstruct", { model: model.name, format: "json" }, { files: [filename] }),
      curlCommand(app.origin, "/encode", { model: model.name }, { files: [filename] }),
      ...(app.hasScore ? [curlCommand(app.origin, "/score", { model: model.name }, { files: [filename] })] : []),
    ].join("\n");
    app.emit("drawing", { latent: mu, image: reconstructed.input, source: filename === DRAWING_NAME ? "the drawing" : filename });
  }

  // data-state is "ready" once the newest image's answers are all shown, its score included
  // (tests and scripts wait on it); "error" when its reconstruction failed.
  async function send(blob, filename, ticket = ++sent) {
    const sentFor = generation;
    const model = app.model;
    section.dataset.state = "waiting";
    const scored = app.hasScore ? score(blob, filename, model, sentFor) : null;
    const result = await status.run(() => submit(blob, filename, model), { waiting: "encoding and reconstructing" });
    if (sentFor !== generation) return;
    if (result) show(result);
    await scored;
    if (sentFor !== generation) return;
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
    $("#draw-score-hint", section).hidden = !app.hasScore;
    canvas.setAttribute("aria-label", `Drawing area for ${info.name}: draw with a mouse, pen or finger; or pick an image file below`);
  });
}
