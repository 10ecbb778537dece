// The panels' pure helpers: the model card's figures, optional /sample parameters and the prior
// and class controls, seeds, the animation order, the map's scale, its stored projection and
// classes, and /score's figures and flag in words.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ordinal, percentileWords, scoreRows, scoreVerdict } from "../../../service/playground/static/draw.js";
import { pingPong, roundLatent } from "../../../service/playground/static/interpolate.js";
import { classColour, nearestPoint, plotScale, storedMap } from "../../../service/playground/static/map.js";
import { cardFacts, describeImage, formatValue, hasPath, metricRows, sampleParameters } from "../../../service/playground/static/models.js";
import {
  MAX_NEW_SEED,
  classChoices,
  enumValues,
  gridDescription,
  newSeed,
  priorChoices,
  sampleQuery,
} from "../../../service/playground/static/sample.js";

const mnistCard = JSON.parse(readFileSync(new URL("../../../models/mnist/model.json", import.meta.url)));
const mnistProjection = JSON.parse(readFileSync(new URL("../../../models/mnist/projection.json", import.meta.url)));

test("the shipped card's figures become readable rows, long text left out", () => {
  const rows = Object.fromEntries(metricRows(mnistCard.metrics));
  // four significant digits of the card's own figures, whatever model ships
  const shown = (value) => String(Number(value.toPrecision(4)));
  assert.equal(rows["importance sampled nll nats"], shown(mnistCard.metrics.importance_sampled_nll_nats));
  assert.equal(rows["active units"], "29");
  const fd = mnistCard.metrics.sample_quality.frechet_distance_samples_vs_test;
  assert.equal(rows["sample quality · frechet distance samples vs test"], shown(fd));
  assert.equal(rows["sample quality · class coverage · share per class"].split(", ").length, 10);
  assert.ok(!("command" in rows)); // a command line is not a figure
  assert.deepEqual(metricRows(undefined), []);
});

test("numbers are shown to four significant digits", () => {
  assert.equal(formatValue(0.004643484061104911), "0.004643");
  assert.equal(formatValue(10000), "10,000");
  assert.equal(formatValue(0.00001), "1.000e-5");
  assert.equal(formatValue(true), "yes");
});

test("the card facts say colour or grayscale and leave out what a card lacks", () => {
  assert.equal(describeImage([3, 64, 64]), "colour 64×64");
  const facts = Object.fromEntries(cardFacts({ name: "emoji", image_shape: [3, 64, 64], latent_shape: [4, 8, 8], card: { version: "1" }, labels: null }));
  assert.equal(facts.images, "colour 64×64");
  assert.equal(facts.latent, "[4, 8, 8]");
  assert.ok(!("classes" in facts) && !("dataset" in facts));
});

test("optional /sample parameters and endpoints are read from the OpenAPI schema", () => {
  const openapi = {
    paths: {
      "/sample": { post: { parameters: [{ name: "n", in: "query", schema: { type: "integer" } }, { name: "accept", in: "header" }] } },
    },
  };
  assert.deepEqual(Object.keys(sampleParameters(openapi)), ["n"]);
  assert.equal(hasPath(openapi, "/score"), false);
  assert.equal(hasPath(openapi, "/sample"), true);
  assert.deepEqual(enumValues({ anyOf: [{ enum: ["standard", "mixture"] }, { type: "null" }] }), ["standard", "mixture"]);
  assert.deepEqual(enumValues({ type: "string" }), []);
});

test("a new seed is a whole number the API accepts", () => {
  assert.equal(newSeed(() => 0), 0);
  const seed = newSeed(() => 0.999999);
  assert.ok(Number.isInteger(seed) && seed >= 0 && seed < MAX_NEW_SEED);
});

test("the animation goes there and back without repeating its ends", () => {
  assert.deepEqual(pingPong(4), [0, 1, 2, 3, 2, 1]);
  assert.deepEqual(pingPong(2), [0, 1]);
  assert.deepEqual(roundLatent([0.123456789, -1.000004]), [0.12346, -1]);
});

test("the map's plot coordinates and (u, v) convert both ways, v upwards", () => {
  const scale = plotScale({ u: [-2, 2], v: [-1, 1] }, 300);
  assert.deepEqual(scale.toPlot([-2, 1]), [0, 0]);
  assert.deepEqual(scale.toPlot([2, -1]), [300, 300]);
  assert.deepEqual(scale.fromPlot(scale.toPlot([0.5, 0.25])), [0.5, 0.25]);
});

test("a stored projection's map position (u, v) is mean + u * pc1 + v * pc2, its points coloured by class", () => {
  const map = storedMap(mnistProjection, mnistCard.latent_dim);
  assert.equal(map.source, "projection");
  assert.equal(map.points.length, 2000);
  assert.deepEqual(map.labels, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  assert.equal(map.classes.length, 2000);
  const [pc1, pc2] = mnistProjection.components;
  const z = map.point(1.5, -2);
  assert.equal(z.length, 32);
  z.forEach((x, j) => assert.ok(Math.abs(x - (mnistProjection.mean[j] + 1.5 * pc1[j] - 2 * pc2[j])) < 1e-12));
  assert.deepEqual(map.point(0, 0), mnistProjection.mean);
  assert.match(map.axes, /^pc1 explains \d+\.\d% and pc2 \d+\.\d% of the test means' variance$/);
  assert.match(map.about, /2,000 of the 10,000 test images.*colours are classes/);
  assert.throws(() => storedMap(mnistProjection, 16), /does not fit this model's 16 latent values/);
  assert.equal(storedMap({ ...mnistProjection, labels: null }, 32).classes, null); // no classes: one colour
});

test("classes get one of ten colours, reused past ten; the nearest point is found", () => {
  assert.equal(classColour(0), "class-0");
  assert.equal(classColour(9), "class-9");
  assert.equal(classColour(12), "class-2");
  assert.equal(classColour(undefined), "");
  assert.equal(nearestPoint([[0, 0], [2, 2], [1, 0.2]], [0.9, 0]), 2);
  assert.equal(nearestPoint([], [0, 0]), -1);
});

// /score's answer, shaped as docs/api.md gives it.
const scored = (result, table = { images: 10000, k: 64, prior: "standard" }) => ({
  model: "mnist",
  k: 64,
  seed: 0,
  prior: "standard",
  outlier_percentile: 99,
  table,
  results: [
    {
      filename: "drawing.png",
      neg_elbo: 98.2134,
      reconstruction: 80.01,
      kl: 18.2034,
      nll: 92.456,
      bits_per_dim: 0.17012,
      complexity_bits: 1200,
      complexity_corrected: -1058.3,
      ...result,
    },
  ],
});

test("percentiles are said as ordinals, a share above 99 to one decimal", () => {
  assert.deepEqual([1, 2, 3, 4, 11, 12, 13, 21, 22, 62, 100, 101, 111].map(ordinal), [
    "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "62nd", "100th", "101st", "111th",
  ]);
  assert.equal(percentileWords(61.7), "62nd");
  assert.equal(percentileWords(99.64), "99.6th");
  assert.equal(percentileWords(100), "100th");
  assert.equal(percentileWords(0.2), "1st"); // above none of the test set only at 0
  assert.equal(percentileWords(0), "0th");
});

test("a /score answer's flag is in words: typical, outlier, or no table", () => {
  assert.deepEqual(scoreVerdict(scored({ percentile: 61.7, outlier_score: 55.1, outlier: false }).results[0]), {
    kind: "typical",
    text: "typical for this model (62nd percentile)",
  });
  assert.deepEqual(scoreVerdict(scored({ percentile: 100, outlier_score: 100, outlier: true }).results[0]), {
    kind: "outlier",
    text: "outlier: unlike the test set (outlier score 100)",
  });
  assert.equal(scoreVerdict(scored({ percentile: 99.95, outlier_score: 99.46, outlier: true }).results[0]).text, "outlier: unlike the test set (outlier score 99.5)");
  const none = scored({ percentile: null, outlier_score: null, outlier: null }, null);
  assert.deepEqual(scoreVerdict(none.results[0]), { kind: "none", text: "no test-set table for this model" });
  assert.equal(scoreVerdict(undefined).kind, "none");
});

test("a /score answer's figures: neg ELBO and NLL in nats, bits/dim, the percentile and outlier score", () => {
  const rows = scoreRows(scored({ percentile: 61.7, outlier_score: 55.1, outlier: false }));
  assert.deepEqual(rows, [
    ["neg ELBO", "98.21 nats", "reconstruction 80.01 + KL 18.2"],
    ["NLL", "92.46 nats", "importance sampled, k = 64"],
    ["bits/dim", "0.1701", ""],
    ["test-set percentile", "62nd", "of 10,000 test images' neg ELBO"],
    ["outlier score", "55.1", "flagged as an outlier above 99"],
  ]);
  const none = scoreRows(scored({ percentile: null, outlier_score: null, outlier: null }, null));
  assert.equal(none.length, 4);
  assert.deepEqual(none[3], ["test-set percentile", "none", "the model ships no test-set table (scores.npz)"]);
  assert.deepEqual(scoreRows({}), []);
});

// /sample's query parameters as the service documents them (OpenAPI), and cards with and without priors.
const sampleSchema = { n: {}, seed: {}, temperature: {}, model: {}, prior: { anyOf: [{ enum: ["standard", "mixture"] }, { type: "null" }] }, label: {} };
const withPriors = {
  name: "mnist",
  labels: ["0", "1", "7"],
  card: { files: { prior: { path: "prior.npz" } }, prior: { default: "mixture", kinds: ["standard", "mixture"], class_conditional: {} } },
};
const emoji = { name: "emoji", labels: ["animals-and-nature", "flags"], card: { files: {}, labels: ["animals-and-nature", "flags"] } };

test("the prior control is offered only for a model that stores a mixture, its default named", () => {
  assert.deepEqual(priorChoices(withPriors, sampleSchema).map((c) => [c.value, c.text, c.disabled]), [
    ["", "default (mixture)", false],
    ["standard", "standard N(0, I)", false],
    ["mixture", "mixture (stored)", false],
  ]);
  // With a class chosen, standard is not offered (the class's mixture is what /sample draws).
  const forClass = priorChoices(withPriors, sampleSchema, true);
  assert.equal(forClass[0].text, "default (the class's mixture)");
  assert.equal(forClass[1].disabled, true);
  assert.equal(priorChoices(emoji, sampleSchema), null);
  assert.equal(priorChoices(withPriors, { n: {} }), null); // a /sample without prior
  const noDefault = { ...withPriors, card: { files: { prior: {} }, prior: {} } };
  assert.equal(priorChoices(noDefault, sampleSchema)[0].text, "default (standard)");
});

test("the class control is offered only for a model with class priors, by class name", () => {
  assert.deepEqual(classChoices(withPriors, sampleSchema).map((c) => c.value), ["", "0", "1", "7"]);
  assert.equal(classChoices(withPriors, sampleSchema)[0].text, "any");
  assert.equal(classChoices(emoji, sampleSchema), null); // labels, but no class priors
  const mixtureOnly = { ...withPriors, card: { files: { prior: {} }, prior: { default: "standard" } } };
  assert.equal(classChoices(mixtureOnly, sampleSchema), null);
  assert.equal(classChoices({ ...withPriors, labels: null, card: { ...withPriors.card, labels: undefined } }, sampleSchema), null);
  assert.equal(classChoices(withPriors, { n: {}, prior: {} }), null); // a /sample without label
});

test("the /sample query sends prior and label only when chosen, never a class with the standard prior", () => {
  const base = { n: "16", seed: "3", temperature: "1", model: "mnist" };
  assert.deepEqual(sampleQuery(base), base);
  assert.deepEqual(sampleQuery({ ...base, prior: "mixture", label: "7" }), { ...base, label: "7", prior: "mixture" });
  assert.deepEqual(sampleQuery({ ...base, prior: "standard" }), { ...base, prior: "standard" });
  assert.deepEqual(sampleQuery({ ...base, prior: "standard", label: "7" }), { ...base, label: "7" });
  assert.equal(gridDescription(sampleQuery({ ...base, prior: "mixture", label: "7" })), "16 samples from mnist, class 7, mixture prior, seed 3, temperature 1");
  assert.equal(gridDescription(base), "16 samples from mnist, seed 3, temperature 1");
});
