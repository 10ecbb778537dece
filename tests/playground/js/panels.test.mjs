// The panels' pure helpers: the model card's figures, optional /sample parameters, seeds, the
// animation order, the map's scale, its stored projection and classes, and /score's numbers.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { scoreText } from "../../../service/playground/static/draw.js";
import { pingPong, roundLatent } from "../../../service/playground/static/interpolate.js";
import { classColour, nearestPoint, plotScale, storedMap } from "../../../service/playground/static/map.js";
import { cardFacts, describeImage, formatValue, hasPath, metricRows, sampleParameters } from "../../../service/playground/static/models.js";
import { MAX_NEW_SEED, enumValues, newSeed } from "../../../service/playground/static/sample.js";

const mnistCard = JSON.parse(readFileSync(new URL("../../../models/mnist/model.json", import.meta.url)));
const mnistProjection = JSON.parse(readFileSync(new URL("../../../models/mnist/projection.json", import.meta.url)));

test("the shipped card's figures become readable rows, long text left out", () => {
  const rows = Object.fromEntries(metricRows(mnistCard.metrics));
  assert.equal(rows["importance sampled nll nats"], "85.34");
  assert.equal(rows["active units"], "29");
  assert.equal(rows["sample quality · frechet distance samples vs test"], "179.3");
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

test("a /score answer's numbers are listed by name", () => {
  assert.equal(scoreText({ results: [{ filename: "d.png", log_likelihood: -85.3, bits_per_dim: 0.157 }] }), "log likelihood -85.3, bits per dim 0.157");
  assert.equal(scoreText({}), "");
});
