// Latent arithmetic done in the page: shapes, lerp, and the PCA behind the latent map.
import assert from "node:assert/strict";
import { test } from "node:test";

import { extent, flatten, lerp, lerpPath, pca2, planePoint, reshape, sigmaFromLogvar } from "../../../service/playground/static/latent.js";

const close = (a, b, tolerance = 1e-9) => assert.ok(Math.abs(a - b) <= tolerance, `${a} vs ${b}`);

test("a spatial latent flattens and reshapes back to [C, h, w]", () => {
  const nested = [
    [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]],
    [[13, 14, 15, 16], [17, 18, 19, 20], [21, 22, 23, 24]],
  ];
  const flat = flatten(nested);
  assert.deepEqual(flat, Array.from({ length: 24 }, (_, i) => i + 1));
  assert.deepEqual(reshape(flat, [2, 3, 4]), nested);
  assert.deepEqual(reshape([1, 2], [2]), [1, 2]);
  assert.throws(() => reshape([1, 2, 3], [2, 2]), /holds 4 values, not 3/);
});

test("sigma is exp(logvar / 2)", () => {
  assert.deepEqual(sigmaFromLogvar([0, 2 * Math.log(3)]).map((x) => Number(x.toFixed(12))), [1, 3]);
});

test("a walk starts at A, ends at B and steps evenly", () => {
  assert.deepEqual(lerp([0, 10], [10, 20], 0.25), [2.5, 12.5]);
  const path = lerpPath([0, 0], [1, -2], 5);
  assert.equal(path.length, 5);
  assert.deepEqual(path[0], [0, 0]);
  assert.deepEqual(path[4], [1, -2]);
  assert.deepEqual(path[2], [0.5, -1]);
  assert.throws(() => lerpPath([0], [1], 1), /at least 2 frames/);
  assert.throws(() => lerp([0], [1, 2], 0.5), /differ in size/);
});

/** Points spread 3 along (1, 1, 0)/sqrt 2 and 1 along (1, -1, 0)/sqrt 2, around (5, 5, 5), uncorrelated. */
function anisotropicCloud() {
  const rows = [];
  for (const scale of [1, 0.5, 0.25]) {
    for (const [a, b] of [[3, 0], [-3, 0], [0, 1], [0, -1], [2, 0.5], [-2, -0.5], [2, -0.5], [-2, 0.5]]) {
      rows.push([5 + (scale * (a + b)) / Math.SQRT2, 5 + (scale * (a - b)) / Math.SQRT2, 5]);
    }
  }
  return rows;
}

test("PCA finds the directions of largest spread, largest first, with a fixed sign", () => {
  const pca = pca2(anisotropicCloud());
  const [pc1, pc2] = pca.components;
  close(Math.abs(pc1[0]), Math.SQRT1_2, 1e-6);
  close(pc1[0], pc1[1], 1e-6); // (1, 1, 0) / sqrt 2
  close(pc2[0], -pc2[1], 1e-6); // (1, -1, 0) / sqrt 2, orthogonal to pc1
  close(pc1[2], 0, 1e-9);
  assert.ok(pca.variances[0] > 3 * pca.variances[1]);
  for (const pc of [pc1, pc2]) {
    const largest = pc.reduce((best, x) => (Math.abs(x) > Math.abs(best) ? x : best), 0);
    assert.ok(largest > 0); // a fixed sign: each component's largest entry is positive
  }
  close(pca.mean[2], 5);
});

test("PCA is deterministic, and a point in the plane maps back to itself", () => {
  const rows = anisotropicCloud();
  assert.deepEqual(pca2(rows).components, pca2(rows).components);
  const pca = pca2(rows);
  for (const row of rows.slice(0, 5)) {
    const [u, v] = pca.project(row);
    pca.point(u, v).forEach((x, j) => close(x, row[j], 1e-6));
  }
  assert.deepEqual(pca.point(0, 0), pca.mean);
});

test("a plane point is the mean plus u times pc1 plus v times pc2", () => {
  assert.deepEqual(planePoint([1, 2, 3], [[1, 0, 0], [0, 0, 1]], 2, -1), [3, 2, 2]);
  assert.deepEqual(planePoint([1, 2, 3], [[1, 0, 0], [0, 0, 1]], 0, 0), [1, 2, 3]);
});

test("PCA of 256 latents of 32 dimensions runs quickly", () => {
  let state = 1;
  const random = () => ((state = (state * 48271) % 2147483647) / 2147483647) - 0.5;
  const rows = Array.from({ length: 256 }, () => Array.from({ length: 32 }, random));
  const started = performance.now();
  const pca = pca2(rows);
  assert.ok(performance.now() - started < 2000);
  close(pca.components[0].reduce((s, x) => s + x * x, 0), 1, 1e-9);
  close(pca.components[0].reduce((s, x, j) => s + x * pca.components[1][j], 0), 0, 1e-6);
});

test("the map's extent has a margin and survives a single point", () => {
  assert.deepEqual(extent([[0, 0], [10, 20]], 0.1), { u: [-1, 11], v: [-2, 22] });
  assert.deepEqual(extent([[1, 1]], 0.5), { u: [0.5, 1.5], v: [0.5, 1.5] });
});
