// The drawing as data and its conversion to an upload (the DOM half runs in the browser tests).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Drawing, canvasSize, paint, relativePoint, rgbHex, themeFor, uploadSize } from "../../../service/playground/static/canvas.js";

test("grayscale models are drawn light on black, colour models in colour on the card's background", () => {
  assert.deepEqual(themeFor({ image_shape: [1, 28, 28] }), { colour: false, background: "#000000", ink: "#ffffff" });
  assert.equal(themeFor({ image_shape: [3, 64, 64], card: {} }).background, "#ffffff");
  const tinted = themeFor({ image_shape: [3, 64, 64], card: { preprocessing_options: { background: [0, 128, 255] } } });
  assert.equal(tinted.colour, true);
  assert.equal(tinted.background, "#0080ff");
  assert.equal(rgbHex([300, -4, 15.4]), "#ff000f");
});

test("the canvas keeps the model's aspect and the upload is 4x the model's side", () => {
  assert.deepEqual(canvasSize([1, 28, 28]), { width: 280, height: 280 });
  assert.deepEqual(canvasSize([3, 12, 16]), { width: 280, height: 210 });
  assert.deepEqual(uploadSize({ width: 280, height: 280 }, [1, 28, 28]), { width: 112, height: 112 });
  assert.deepEqual(uploadSize({ width: 280, height: 280 }, [3, 64, 64]), { width: 256, height: 256 });
  assert.deepEqual(uploadSize({ width: 280, height: 280 }, [3, 128, 128]), { width: 280, height: 280 }); // never upscaled
});

test("pointer positions become fractions of the canvas, clamped to it", () => {
  const rect = { left: 10, top: 20, width: 200, height: 100 };
  assert.deepEqual(relativePoint(110, 70, rect), [0.5, 0.5]);
  assert.deepEqual(relativePoint(-50, 500, rect), [0, 1]);
});

test("undo removes the last stroke and clear removes them all", () => {
  const drawing = new Drawing();
  assert.equal(drawing.isEmpty, true);
  assert.equal(drawing.end(), false); // no stroke to end
  drawing.begin([0.1, 0.1], { ink: "#fff", width: 0.07 });
  drawing.extend([0.2, 0.2]);
  assert.equal(drawing.isEmpty, false);
  assert.equal(drawing.end(), true);
  drawing.begin([0.5, 0.5], { ink: "#f00", width: 0.1 });
  drawing.end();
  assert.equal(drawing.strokes.length, 2);
  assert.equal(drawing.undo(), true);
  assert.deepEqual(drawing.strokes.map((s) => s.ink), ["#fff"]);
  drawing.clear();
  assert.equal(drawing.isEmpty, true);
  assert.equal(drawing.undo(), false);
});

/** A 2-D context that records what is drawn. */
function recordingContext() {
  const calls = [];
  const context = new Proxy(
    {},
    {
      get: (target, name) => (name in target ? target[name] : (...args) => calls.push([name, ...args])),
      set: (target, name, value) => {
        calls.push([`set ${String(name)}`, value]);
        return true;
      },
    },
  );
  return { context, calls };
}

test("painting fills the background, then draws each stroke in its ink and width, a tap as a dot", () => {
  const drawing = new Drawing();
  drawing.begin([0.5, 0.5], { ink: "#ffffff", width: 0.1 }); // a tap: one point
  drawing.end();
  drawing.begin([0, 0], { ink: "#ff0000", width: 0.05 });
  drawing.extend([1, 1]);
  const { context, calls } = recordingContext();
  paint(context, drawing, "#000000", 200, 100); // the stroke in progress is painted too
  assert.deepEqual(calls.slice(0, 2), [["set fillStyle", "#000000"], ["fillRect", 0, 0, 200, 100]]);
  const lines = calls.filter(([name]) => ["moveTo", "lineTo", "set strokeStyle", "set lineWidth"].includes(name));
  assert.deepEqual(lines, [
    ["set strokeStyle", "#ffffff"],
    ["set lineWidth", 10],
    ["moveTo", 100, 50],
    ["lineTo", 100, 50],
    ["set strokeStyle", "#ff0000"],
    ["set lineWidth", 5],
    ["moveTo", 0, 0],
    ["lineTo", 200, 100],
  ]);
  assert.equal(calls.filter(([name]) => name === "stroke").length, 2);
});
