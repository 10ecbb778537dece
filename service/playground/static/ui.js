// What every panel shares: a spinner and a status line while waiting, errors in words (never a
// blank panel), latent bars, and small DOM helpers. Styles come from style.css only (the CSP
// forbids inline styles), so state is shown with classes, `hidden` and attributes.

import { ApiError } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";

export function $(selector, root = document) {
  const found = root.querySelector(selector);
  if (!found) throw new Error(`the page has no ${selector}`);
  return found;
}

export function svgElement(tag, attributes = {}) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

/**
 * A panel's busy state and messages: `panel.run(task)` shows the spinner (and aria-busy) until the
 * task settles; an error becomes words in the panel's alert line, and the panel's content stays.
 */
export function panelStatus(section) {
  const spinner = $(".spinner", section);
  const status = $(".status", section);
  const alert = $(".error", section);
  let running = 0;

  const setBusy = (busy) => {
    running += busy ? 1 : -1;
    spinner.hidden = running === 0;
    section.setAttribute("aria-busy", String(running > 0));
  };
  const say = (text) => {
    status.textContent = text;
  };
  const fail = (error) => {
    alert.textContent = error instanceof ApiError ? error.words : `error: ${error?.message ?? error}`;
    alert.hidden = false;
    say("");
  };
  const clearError = () => {
    alert.hidden = true;
    alert.textContent = "";
  };

  return {
    say,
    fail,
    clearError,
    /** Tell the user about a retry: passed to request() as onRetry. */
    retrying: ({ attempt, waitS, words }) => say(`${words} in ${waitS.toFixed(1)} s (try ${attempt + 1})`),
    async run(task, { waiting = "waiting for the service" } = {}) {
      setBusy(true);
      clearError();
      say(waiting);
      try {
        const result = await task();
        say("");
        return result;
      } catch (error) {
        if (error?.name === "AbortError") return undefined;
        fail(error);
        return undefined;
      } finally {
        setBusy(false);
      }
    },
  };
}

/**
 * Latent bars: one column per dimension, mu as a bar from 0 and mu ± sigma as a whisker, on a
 * fixed scale of ±range (values beyond are clipped at the edge). Each bar has a tooltip.
 */
export function renderBars(svg, mu, sigma = null, range = 3) {
  const width = 320;
  const height = 120;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const middle = height / 2;
  const scale = (height / 2 - 4) / range;
  const clip = (value) => Math.max(-range, Math.min(range, value));
  const column = width / mu.length;
  svg.append(svgElement("line", { x1: 0, x2: width, y1: middle, y2: middle, class: "axis" }));
  mu.forEach((value, i) => {
    const x = i * column;
    const top = middle - clip(value) * scale;
    const group = svgElement("g", { class: "bar" });
    const title = svgElement("title");
    title.textContent = sigma ? `z${i}: mu ${value.toFixed(2)}, sigma ${sigma[i].toFixed(2)}` : `z${i}: ${value.toFixed(2)}`;
    group.append(
      title,
      svgElement("rect", {
        x: x + column * 0.15,
        width: Math.max(column * 0.7, 0.5),
        y: Math.min(top, middle),
        height: Math.max(Math.abs(top - middle), 0.5),
        class: value >= 0 ? "positive" : "negative",
      }),
    );
    if (sigma) {
      const centre = x + column / 2;
      group.append(
        svgElement("line", {
          x1: centre,
          x2: centre,
          y1: middle - clip(value + sigma[i]) * scale,
          y2: middle - clip(value - sigma[i]) * scale,
          class: "whisker",
        }),
      );
    }
    svg.append(group);
  });
  svg.dataset.dims = String(mu.length);
  svg.setAttribute("aria-label", `${mu.length} latent dimensions; largest |mu| ${Math.max(...mu.map(Math.abs)).toFixed(2)}`);
}

/** Shows an image whose URL came from URL.createObjectURL, revoking the one it replaces. */
export function showBlob(img, blob) {
  const previous = img.dataset.objectUrl;
  const url = URL.createObjectURL(blob);
  img.src = url;
  img.dataset.objectUrl = url;
  if (previous) URL.revokeObjectURL(previous);
}

/** Copies text; where the clipboard is refused (no permission, plain http), selects it instead. */
export async function copyText(text, fallbackElement) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const range = document.createRange();
    range.selectNodeContents(fallbackElement);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return false;
  }
}

/** Whether the user asked for less motion (no autoplaying animation then). */
export function prefersReducedMotion() {
  return window.matchMedia?.("(prefers-reduced-motion: reduce)").matches ?? false;
}
