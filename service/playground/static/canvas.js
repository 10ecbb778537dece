// The drawing and how it becomes an upload: strokes kept as data (so undo replays them), painted
// on a 2-D context, and exported as a PNG the size the model needs. Only toPngBlob touches the DOM.

export const MAX_CANVAS_SIDE = 280;

/** Colours to draw with for a model: light ink on black for grayscale (MNIST-like), colour on the
 * card's background (default white, as the `fit` rule pads) for RGB. */
export function themeFor(info) {
  const [channels] = info.image_shape;
  if (channels === 1) return { colour: false, background: "#000000", ink: "#ffffff" };
  const background = info.card?.preprocessing_options?.background ?? [255, 255, 255];
  return { colour: true, background: rgbHex(background), ink: "#1f6fd1" };
}

export function rgbHex([r, g, b]) {
  return "#" + [r, g, b].map((c) => Math.max(0, Math.min(255, Math.round(c))).toString(16).padStart(2, "0")).join("");
}

/** Canvas pixels for a model's H x W: the longer side MAX_CANVAS_SIDE, the model's aspect kept. */
export function canvasSize([, height, width], maxSide = MAX_CANVAS_SIDE) {
  const scale = maxSide / Math.max(height, width);
  return { width: Math.round(width * scale), height: Math.round(height * scale) };
}

/** The upload's size: 4x the model's side (the service resizes with Lanczos), never above the canvas. */
export function uploadSize(canvas, [, height, width]) {
  const scale = Math.min(1, Math.max(4 * height, 112) / canvas.height, Math.max(4 * width, 112) / canvas.width);
  return { width: Math.max(1, Math.round(canvas.width * scale)), height: Math.max(1, Math.round(canvas.height * scale)) };
}

/** A pointer event's position as a fraction of the element's box, clamped to [0, 1]. */
export function relativePoint(clientX, clientY, rect) {
  const clamp = (x) => Math.max(0, Math.min(1, x));
  return [clamp((clientX - rect.left) / (rect.width || 1)), clamp((clientY - rect.top) / (rect.height || 1))];
}

/** Strokes as data: positions in [0, 1], width as a fraction of the canvas's shorter side. */
export class Drawing {
  constructor() {
    this.strokes = [];
    this.current = null;
  }

  get isEmpty() {
    return this.strokes.length === 0 && !this.current;
  }

  begin(point, { ink, width }) {
    this.current = { ink, width, points: [point] };
  }

  extend(point) {
    if (this.current) this.current.points.push(point);
  }

  /** Ends the stroke; returns whether there was one. */
  end() {
    if (!this.current) return false;
    this.strokes.push(this.current);
    this.current = null;
    return true;
  }

  undo() {
    this.current = null;
    return this.strokes.pop() !== undefined;
  }

  clear() {
    this.current = null;
    this.strokes = [];
  }
}

/** Paints the background and every stroke (round caps, so a tap leaves a dot). */
export function paint(context, drawing, background, width, height) {
  context.fillStyle = background;
  context.fillRect(0, 0, width, height);
  const side = Math.min(width, height);
  const strokes = drawing.current ? [...drawing.strokes, drawing.current] : drawing.strokes;
  context.lineCap = "round";
  context.lineJoin = "round";
  for (const stroke of strokes) {
    const [first, ...rest] = stroke.points;
    context.strokeStyle = stroke.ink;
    context.lineWidth = stroke.width * side;
    context.beginPath();
    context.moveTo(first[0] * width, first[1] * height);
    // A single point is drawn as a zero-length line: with round caps, a dot.
    for (const [x, y] of rest.length ? rest : [first]) context.lineTo(x * width, y * height);
    context.stroke();
  }
}

/** The canvas, scaled to `size`, as PNG bytes (a Blob) for /reconstruct and /encode. */
export function toPngBlob(canvas, size) {
  const scaled = document.createElement("canvas");
  scaled.width = size.width;
  scaled.height = size.height;
  const context = scaled.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage(canvas, 0, 0, size.width, size.height);
  return new Promise((resolve, reject) =>
    scaled.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the canvas could not be saved as PNG"))), "image/png"),
  );
}

/** A base64 PNG from the API -> a data: URL for an <img>. */
export function pngDataUrl(base64) {
  return `data:image/png;base64,${base64}`;
}

/** A base64 PNG from the API -> a Blob (to upload an image the service returned). */
export function base64ToBlob(base64, type = "image/png") {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return new Blob([bytes], { type });
}
