// The one way the page talks to the service (docs/api.md): fetch, the API's error shape in words,
// and retries of 429 and 503 that honour Retry-After. No DOM here, so node's test runner can load it.

/** A failed call, with the words the page shows (`words`) and the API's own fields. */
export class ApiError extends Error {
  constructor(status, code, words, details = null) {
    super(words);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.words = words;
    this.details = details;
  }
}

export const MAX_ATTEMPTS = 4;
export const MAX_WAIT_S = 10;

/** The API's `{"error": {"code", "message", "details"}}`, or null for any other body. */
export function errorOf(body) {
  const error = body && typeof body === "object" ? body.error : null;
  return error && typeof error === "object" && typeof error.message === "string" ? error : null;
}

/** What the page says about a failed response (status and parsed body). */
export function describeError(status, body) {
  const error = errorOf(body);
  const message = error ? error.message : typeof body === "string" ? body.trim().slice(0, 200) : "";
  switch (status) {
    case 413:
      return message ? `image too large: ${message}` : "image too large for the service";
    case 415:
      return message ? `not an image the service reads: ${message}` : "not an image the service reads";
    case 429:
      return "busy, retrying";
    case 503:
      return message ? `not ready: ${message}` : "the service is not ready yet";
    case 504:
      return message ? `timed out: ${message}` : "the service timed out";
    default:
      if (message) return message;
      return status ? `the service answered HTTP ${status}` : "no answer from the service";
  }
}

/** Seconds to wait from a Retry-After header (seconds or an HTTP date), or null without one. */
export function retryAfterSeconds(value, now = Date.now()) {
  if (value === null || value === undefined || String(value).trim() === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - now) / 1000);
}

/** Backoff when the service names no wait: 0.5 s, 1 s, 2 s, ... */
export function backoffSeconds(attempt) {
  return Math.min(MAX_WAIT_S, 0.5 * 2 ** (attempt - 1));
}

/** `?a=1&b=x` from an object, leaving out null, undefined and "" (the API's defaults apply). */
export function queryString(params = {}) {
  const pairs = Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "");
  if (pairs.length === 0) return "";
  return "?" + pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join("&");
}

/** A string quoted for a POSIX shell. */
export function shellQuote(text) {
  return `'${String(text).replaceAll("'", `'\\''`)}'`;
}

/**
 * The curl command that makes the same call: `curlCommand("http://h", "/sample", {n: 4}, {output: "s.png"})`.
 * `files`: form fields as file names (multipart); `json`: a body sent as JSON.
 */
export function curlCommand(origin, path, query, { method = "POST", output, files, json } = {}) {
  const parts = ["curl"];
  if (method !== "GET" && !files && json === undefined) parts.push("-X", method);
  for (const name of files ?? []) parts.push("-F", shellQuote(`file=@${name}`));
  if (json !== undefined) parts.push("-H", shellQuote("Content-Type: application/json"), "-d", shellQuote(JSON.stringify(json)));
  parts.push(shellQuote(origin + path + queryString(query)));
  if (output) parts.push("-o", output);
  return parts.join(" ");
}

function defaultSleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason ?? new DOMException("aborted", "AbortError"));
    });
  });
}

async function readBody(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function isRetryable(status, body) {
  if (status === 429) return true;
  // 503 is retried while the service starts (not_ready), not while it shuts down.
  return status === 503 && errorOf(body)?.code !== "shutting_down";
}

/**
 * A client: `request(path, {method, query, body, headers, expect, onRetry, signal})` resolves to the
 * parsed JSON (expect "json"), a Blob ("blob") or text ("text"), or rejects with an ApiError.
 * `onRetry({status, attempt, waitS, words})` is told before each wait.
 */
export function createClient({ fetch = globalThis.fetch?.bind(globalThis), sleep = defaultSleep, maxAttempts = MAX_ATTEMPTS } = {}) {
  async function request(path, { method = "GET", query, body, headers, expect = "json", onRetry, signal } = {}) {
    const url = path + queryString(query);
    for (let attempt = 1; ; attempt += 1) {
      let response;
      try {
        response = await fetch(url, { method, body, headers, signal });
      } catch (error) {
        if (error?.name === "AbortError") throw error;
        throw new ApiError(0, "unreachable", `the service cannot be reached (${error?.message ?? error})`);
      }
      if (response.ok) {
        if (expect === "blob") return response.blob();
        if (expect === "text") return response.text();
        return response.json();
      }
      const payload = await readBody(response);
      const words = describeError(response.status, payload);
      if (isRetryable(response.status, payload) && attempt < maxAttempts) {
        const waitS = Math.min(MAX_WAIT_S, retryAfterSeconds(response.headers.get("Retry-After")) ?? backoffSeconds(attempt));
        onRetry?.({ status: response.status, attempt, waitS, words });
        await sleep(waitS * 1000, signal);
        continue;
      }
      const error = errorOf(payload);
      const final = response.status === 429 ? `busy: gave up after ${attempt} tries (${error?.message ?? "queue full"})` : words;
      throw new ApiError(response.status, error?.code ?? `http_${response.status}`, final, error?.details ?? null);
    }
  }
  return { request };
}

/**
 * Wraps an async task so only the newest call's result counts: while one runs, later calls wait,
 * and of those only the last runs (a drawing sent per stroke never queues up behind itself).
 * Resolves superseded calls with `undefined`.
 */
export function latestOnly(task) {
  let running = null;
  let pending = null;
  async function drain() {
    while (pending) {
      const { args, resolve, reject } = pending;
      pending = null;
      try {
        resolve(await task(...args));
      } catch (error) {
        reject(error);
      }
    }
    running = null;
  }
  return (...args) =>
    new Promise((resolve, reject) => {
      pending?.resolve(undefined);
      pending = { args, resolve, reject };
      if (!running) running = drain();
    });
}
