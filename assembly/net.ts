// Whole forward and backward passes in one call each, driven by a plan: a table of the
// layers' sizes, activations and array offsets that core/kernels-wasm.ts writes once
// per (model, workspace). One call per pass instead of two or three per layer matters at
// batch size 1, where a layer's arithmetic takes less time than a call into WebAssembly
// and the reading of its arrays' offsets.

import { ACT_LINEAR, ACT_NONE, ACT_RELU, ACT_LEAKY_RELU, ACT_SIGN, activationBackward, denseBackward, denseForward } from './f64';
import { denseBackward32, denseForward32 } from './f32';

/** The exp-based activations (sigmoid, tanh, softmax), run by the JavaScript backend's code on the same memory. */
// @ts-ignore: decorator
@external("env", "activateJs")
declare function activateJs(kind: i32, z: usize, a: usize, rows: i32, m: i32): void;

// plan layout, int32 words: [layers, grads, gradsLength, then per layer PLAN_STRIDE words]
export const PLAN_HEADER: i32 = 3;
export const PLAN_STRIDE: i32 = 10;
// per layer: n, m, act, W, b, z, a, delta, gW, gb
// @ts-ignore: decorator
@inline function field(layer: usize, i: i32): i32 {
  return load<i32>(layer + (<usize>i << 2));
}
// @ts-ignore: decorator
@inline function layerAt(plan: usize, l: i32): usize {
  return plan + (<usize>(PLAN_HEADER + l * PLAN_STRIDE) << 2);
}

// @ts-ignore: decorator
@inline function inWasm(act: i32): bool {
  return act == ACT_LINEAR || act == ACT_RELU || act == ACT_LEAKY_RELU || act == ACT_SIGN;
}

/** Every layer's z and a for `rows` rows of input `x`; `f32` picks the float32 products. */
export function forwardNet(plan: usize, rows: i32, x: usize, scratch: usize, f32: bool): void {
  const layers = load<i32>(plan);
  let input = x;
  for (let l = 0; l < layers; l++) {
    const p = layerAt(plan, l);
    const n = field(p, 0), m = field(p, 1), act = field(p, 2);
    const W = <usize>field(p, 3), b = <usize>field(p, 4), z = <usize>field(p, 5), a = <usize>field(p, 6);
    const fused = inWasm(act) ? act : ACT_NONE;
    if (f32) denseForward32(input, W, b, z, a, rows, n, m, fused, scratch);
    else denseForward(input, W, b, z, a, rows, n, m, fused, scratch);
    if (fused == ACT_NONE) activateJs(act, z, a, rows, m);
    input = a;
  }
}

/**
 * With the output layer's delta in place: from the last layer down, writes gW and gb (as
 * if accumulated onto a zeroed gradient, which JavaScript's pass does) and passes delta
 * through W and the activation below.
 */
export function backwardNet(plan: usize, rows: i32, x: usize, scratch: usize, f32: bool): void {
  const layers = load<i32>(plan);
  for (let l = layers - 1; l >= 0; l--) {
    const p = layerAt(plan, l);
    const n = field(p, 0), m = field(p, 1);
    const W = <usize>field(p, 3), delta = <usize>field(p, 7), gW = <usize>field(p, 8), gb = <usize>field(p, 9);
    let input = x, dx: usize = 0;
    const below = l > 0 ? layerAt(plan, l - 1) : 0;
    if (l > 0) { input = <usize>field(below, 6); dx = <usize>field(below, 7); }
    if (f32) denseBackward32(input, delta, W, gW, gb, dx, rows, n, m, scratch, true);
    else denseBackward(input, delta, W, gW, gb, dx, rows, n, m, scratch, true);
    if (l > 0) activationBackward(field(below, 2), <usize>field(below, 5), <usize>field(below, 6), dx, rows, n);
  }
}
