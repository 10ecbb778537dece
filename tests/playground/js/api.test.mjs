// The fetch wrapper: the API's errors in words, retries that honour Retry-After, curl commands.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ApiError,
  createClient,
  curlCommand,
  describeError,
  latestOnly,
  queryString,
  retryAfterSeconds,
  shellQuote,
} from "../../../service/playground/static/api.js";

const apiError = (code, message) => ({ error: { code, message } });

/** A fetch that answers from a list: [status, body, headers] per call, and records the URLs. */
function scriptedFetch(answers) {
  const calls = [];
  const fetch = async (url, options) => {
    calls.push({ url, options });
    const [status, body, headers = {}] = answers[Math.min(calls.length - 1, answers.length - 1)];
    const text = typeof body === "string" ? body : JSON.stringify(body);
    return new Response(status === 204 ? null : text, { status, headers });
  };
  return { fetch, calls };
}

test("a 413 says the image is too large, with the service's reason", () => {
  assert.equal(describeError(413, apiError("payload_too_large", "at most 20971520 bytes")), "image too large: at most 20971520 bytes");
  assert.equal(describeError(413, ""), "image too large for the service");
});

test("a 429 says busy, retrying; other errors use the API's message", () => {
  assert.equal(describeError(429, apiError("queue_full", "the queue is full")), "busy, retrying");
  assert.equal(describeError(422, apiError("invalid_request", "query parameter 'n': 2000 is too many")), "query parameter 'n': 2000 is too many");
  assert.equal(describeError(415, apiError("unsupported_media_type", "TIFF is not supported")), "not an image the service reads: TIFF is not supported");
  assert.equal(describeError(500, "Internal Server Error"), "Internal Server Error");
  assert.equal(describeError(502, ""), "the service answered HTTP 502");
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  assert.equal(retryAfterSeconds("3"), 3);
  assert.equal(retryAfterSeconds("0"), 0);
  assert.equal(retryAfterSeconds(null), null);
  assert.equal(retryAfterSeconds("soon"), null);
  const now = Date.parse("2026-12-01T10:00:00Z");
  assert.equal(retryAfterSeconds("Tue, 01 Dec 2026 10:00:05 GMT", now), 5);
});

test("a query string leaves out empty values so the API's defaults apply", () => {
  assert.equal(queryString({ n: 16, seed: 0, label: "", prior: null, model: "a b" }), "?n=16&seed=0&model=a%20b");
  assert.equal(queryString({}), "");
});

test("curl commands are quoted for the shell and match the call", () => {
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(
    curlCommand("http://h:1", "/sample", { n: 4, seed: 7 }, { output: "s.png" }),
    "curl -X POST 'http://h:1/sample?n=4&seed=7' -o s.png",
  );
  assert.equal(curlCommand("http://h", "/encode", { model: "mnist" }, { files: ["d.png"] }), "curl -F 'file=@d.png' 'http://h/encode?model=mnist'");
  assert.equal(
    curlCommand("http://h", "/decode", { format: "json" }, { json: { latents: [[0, 1]] } }),
    `curl -H 'Content-Type: application/json' -d '{"latents":[[0,1]]}' 'http://h/decode?format=json'`,
  );
});

test("a 429 is retried after the Retry-After the service names, then the answer is returned", async () => {
  const { fetch, calls } = scriptedFetch([
    [429, apiError("queue_full", "full"), { "Retry-After": "2" }],
    [200, { ok: true }],
  ]);
  const waits = [];
  const retries = [];
  const client = createClient({ fetch, sleep: async (ms) => waits.push(ms) });
  const body = await client.request("/sample", { method: "POST", query: { n: 1 }, onRetry: (r) => retries.push(r) });
  assert.deepEqual(body, { ok: true });
  assert.deepEqual(waits, [2000]);
  assert.equal(calls.length, 2);
  assert.equal(calls[0].url, "/sample?n=1");
  assert.equal(retries[0].words, "busy, retrying");
  assert.equal(retries[0].waitS, 2);
});

test("without Retry-After the wait backs off, and the client gives up after its attempts", async () => {
  const { fetch, calls } = scriptedFetch([[429, apiError("queue_full", "the inference queue is full")]]);
  const waits = [];
  const client = createClient({ fetch, sleep: async (ms) => waits.push(ms), maxAttempts: 3 });
  await assert.rejects(client.request("/decode"), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 429);
    assert.equal(error.code, "queue_full");
    assert.equal(error.words, "busy: gave up after 3 tries (the inference queue is full)");
    return true;
  });
  assert.deepEqual(waits, [500, 1000]);
  assert.equal(calls.length, 3);
});

test("a service that is shutting down is not retried; one that is starting is", async () => {
  const down = scriptedFetch([[503, apiError("shutting_down", "shutting down")]]);
  await assert.rejects(createClient({ fetch: down.fetch, sleep: async () => {} }).request("/models"), { status: 503 });
  assert.equal(down.calls.length, 1);
  const starting = scriptedFetch([[503, apiError("not_ready", "loading")], [200, { models: [] }]]);
  assert.deepEqual(await createClient({ fetch: starting.fetch, sleep: async () => {} }).request("/models"), { models: [] });
});

test("an error's words, code and details come from the API's error shape", async () => {
  const { fetch } = scriptedFetch([[404, { error: { code: "model_not_found", message: "unknown model 'x'", details: { available: ["mnist"] } } }]]);
  await assert.rejects(createClient({ fetch }).request("/sample"), (error) => {
    assert.equal(error.code, "model_not_found");
    assert.equal(error.words, "unknown model 'x'");
    assert.deepEqual(error.details, { available: ["mnist"] });
    return true;
  });
});

test("a service that cannot be reached is said so", async () => {
  const fetch = async () => {
    throw new TypeError("Failed to fetch");
  };
  await assert.rejects(createClient({ fetch }).request("/models"), { code: "unreachable", message: /cannot be reached/ });
});

test("latestOnly runs the newest of the calls made while one runs, and drops those in between", async () => {
  const started = [];
  const releases = [];
  const task = latestOnly((value) => {
    started.push(value);
    return new Promise((resolve) => releases.push(() => resolve(value)));
  });
  const first = task(1);
  const second = task(2);
  const third = task(3);
  assert.deepEqual(started, [1]);
  releases[0]();
  assert.equal(await first, 1);
  assert.equal(await second, undefined); // superseded by 3 before it started
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(started, [1, 3]);
  releases[1]();
  assert.equal(await third, 3);
});
