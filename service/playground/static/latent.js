// Latent arithmetic the page does itself: flatten and reshape ([D] or [C, h, w] latents),
// sigma from logvar, linear interpolation, a two-component PCA and the plane point (u, v) of the
// latent map. No DOM.

/** Nested arrays (any depth) -> one flat array of numbers. */
export function flatten(nested) {
  return Array.isArray(nested) ? nested.flat(Infinity).map(Number) : [Number(nested)];
}

/** A flat array -> nested arrays of `shape` (the API's [*latent_shape]); [D] stays flat. */
export function reshape(flat, shape) {
  const size = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== size) throw new Error(`a latent of shape [${shape}] holds ${size} values, not ${flat.length}`);
  if (shape.length <= 1) return Array.from(flat);
  const step = size / shape[0];
  const rows = [];
  for (let i = 0; i < shape[0]; i += 1) rows.push(reshape(flat.slice(i * step, (i + 1) * step), shape.slice(1)));
  return rows;
}

/** Standard deviations from log-variances: sigma = exp(logvar / 2). */
export function sigmaFromLogvar(logvar) {
  return logvar.map((value) => Math.exp(value / 2));
}

/** The point a fraction t of the way from a to b. */
export function lerp(a, b, t) {
  if (a.length !== b.length) throw new Error(`endpoints differ in size: ${a.length} and ${b.length}`);
  return a.map((value, i) => value + (b[i] - value) * t);
}

/** `frames` latents from a to b inclusive, evenly spaced in t. */
export function lerpPath(a, b, frames) {
  if (!Number.isInteger(frames) || frames < 2) throw new Error("an interpolation needs at least 2 frames");
  return Array.from({ length: frames }, (_, i) => lerp(a, b, i / (frames - 1)));
}

function dot(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += a[i] * b[i];
  return sum;
}

function normalise(v) {
  const length = Math.sqrt(dot(v, v));
  return length > 0 ? v.map((x) => x / length) : v;
}

/** A fixed start vector (no Math.random), so the same rows always give the same map. */
function startVector(size, salt) {
  let state = 2463534242 + salt * 7919;
  return normalise(
    Array.from({ length: size }, () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return ((state >>> 0) / 4294967296) - 0.5;
    }),
  );
}

/**
 * The first two principal components of `rows` (N latents, flat), by power iteration on the
 * centred data (X^T X v without forming the covariance), the second orthogonal to the first.
 * Returns {mean, components: [pc1, pc2], variances: [v1, v2], project(row) -> [u, v],
 * point(u, v) -> mean + u * pc1 + v * pc2}. Each component's largest entry is positive.
 */
export function pca2(rows, { iterations = 500, tolerance = 1e-15 } = {}) {
  if (rows.length < 2) throw new Error("PCA needs at least 2 rows");
  const size = rows[0].length;
  const mean = new Array(size).fill(0);
  for (const row of rows) for (let j = 0; j < size; j += 1) mean[j] += row[j] / rows.length;
  const centred = rows.map((row) => row.map((x, j) => x - mean[j]));
  const components = [];
  const variances = [];
  for (let k = 0; k < Math.min(2, size); k += 1) {
    let v = startVector(size, k);
    let variance = 0;
    for (let it = 0; it < iterations; it += 1) {
      const next = new Array(size).fill(0);
      for (const row of centred) {
        const score = dot(row, v);
        for (let j = 0; j < size; j += 1) next[j] += score * row[j];
      }
      for (const done of components) {
        const overlap = dot(next, done);
        for (let j = 0; j < size; j += 1) next[j] -= overlap * done[j];
      }
      const normalised = normalise(next);
      const change = 1 - Math.abs(dot(normalised, v));
      v = normalised;
      variance = Math.sqrt(dot(next, next)) / (rows.length - 1);
      if (change < tolerance) break;
    }
    let largest = 0;
    for (let j = 1; j < size; j += 1) if (Math.abs(v[j]) > Math.abs(v[largest])) largest = j;
    if (v[largest] < 0) v = v.map((x) => -x);
    components.push(v);
    variances.push(variance);
  }
  while (components.length < 2) {
    components.push(new Array(size).fill(0));
    variances.push(0);
  }
  const [pc1, pc2] = components;
  return {
    mean,
    components,
    variances,
    project: (row) => [dot(row.map((x, j) => x - mean[j]), pc1), dot(row.map((x, j) => x - mean[j]), pc2)],
    point: (u, v) => planePoint(mean, components, u, v),
  };
}

/** The map position (u, v) as a latent: mean + u * pc1 + v * pc2 (flat; reshape to latent_shape). */
export function planePoint(mean, [pc1, pc2], u, v) {
  return mean.map((m, j) => m + u * pc1[j] + v * pc2[j]);
}

/** [min, max] of each of two coordinates, widened by `margin` of the range on each side. */
export function extent(points, margin = 0.08) {
  const result = [0, 1].map((axis) => {
    const values = points.map((p) => p[axis]);
    const low = Math.min(...values);
    const high = Math.max(...values);
    const pad = (high - low || 1) * margin;
    return [low - pad, high + pad];
  });
  return { u: result[0], v: result[1] };
}
