/**
 * The binary frame that carries a model's parameters (or gradients) over WebSocket.
 * Little-endian throughout; no Node APIs, so browsers decode it with the same code.
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0  | 4 | magic `SGF1` |
 * | 4  | 1 | kind: 1 = parameters, 2 = gradients, 3 = history (past parameters, answering a `history` request) |
 * | 5  | 1 | dtype: 1 = float32, 2 = float64 |
 * | 6  | 2 | byte length R of the run id (UTF-8) |
 * | 8  | 8 | step (float64: the trainer's step count when the frame was taken) |
 * | 16 | 4 | layer count L |
 * | 20 | 4 | input size of the first layer |
 * | 24 | 4·L | units (outputs) of each layer |
 * | 24 + 4L | R | run id |
 * | … | 0–7 | zero padding to a multiple of 8 |
 * | D  | P·(4 or 8) | the values: per layer, weights (units × inputs, row-major, row i = neuron i) then biases |
 *
 * D is a multiple of 8, so a receiver can view the values in place (`new Float64Array(buf, D, P)`).
 * The values are exactly `Model.params` in order: a Float64 frame is one memcpy of it.
 */
export const FRAME_MAGIC = 0x31464753; // 'SGF1' read as a little-endian u32
/** The kind byte of a binary frame: parameters, gradients or history. */
export const FRAME_KIND = { parameters: 1, gradients: 2, history: 3 } as const;
/** The number-type byte of a binary frame. */
export const FRAME_DTYPE = { float32: 1, float64: 2 } as const;
/** What a binary frame carries (see `FRAME_KIND`). */
export type FrameKind = keyof typeof FRAME_KIND;
/** The number type of a binary frame's values (see `FRAME_DTYPE`). */
export type FrameDtype = keyof typeof FRAME_DTYPE;

/** One layer of a decoded frame: its shape, weights (row-major) and biases. */
export interface FrameLayer {
  readonly inputs: number;
  readonly units: number;
  /** units × inputs, row-major. */
  readonly weights: Float32Array | Float64Array;
  readonly bias: Float32Array | Float64Array;
}

/** A decoded binary frame (SGF1): kind, run, step and the values per layer. */
export interface DecodedFrame {
  readonly kind: FrameKind;
  readonly dtype: FrameDtype;
  readonly run: string;
  readonly step: number;
  readonly inputSize: number;
  /** All values, laid out like `Model.params` (a view into the received buffer). */
  readonly values: Float32Array | Float64Array;
  /** Per-layer views into `values`. */
  readonly layers: readonly FrameLayer[];
}

export interface FrameShape {
  readonly inputSize: number;
  readonly units: readonly number[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function headerLength(layerCount: number, runIdBytes: number): number {
  const raw = 24 + 4 * layerCount + runIdBytes;
  return Math.ceil(raw / 8) * 8;
}

/** Encodes `values` (laid out like `Model.params` of a model of `shape`) into one frame. */
export function encodeFrame(kind: FrameKind, dtype: FrameDtype, run: string, step: number, shape: FrameShape, values: Float64Array): Uint8Array {
  const id = encoder.encode(run);
  if (id.length > 0xffff) throw new RangeError('run id longer than 65535 bytes');
  const L = shape.units.length;
  const offset = headerLength(L, id.length);
  const width = dtype === 'float64' ? 8 : 4;
  const bytes = new Uint8Array(offset + values.length * width);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint8(4, FRAME_KIND[kind]);
  view.setUint8(5, FRAME_DTYPE[dtype]);
  view.setUint16(6, id.length, true);
  view.setFloat64(8, step, true);
  view.setUint32(16, L, true);
  view.setUint32(20, shape.inputSize, true);
  for (let l = 0; l < L; l++) view.setUint32(24 + 4 * l, shape.units[l], true);
  bytes.set(id, 24 + 4 * L);
  // typed arrays use the platform's byte order; every platform Node and browsers run on is little-endian
  if (dtype === 'float64') new Float64Array(bytes.buffer, offset, values.length).set(values);
  else new Float32Array(bytes.buffer, offset, values.length).set(values);
  return bytes;
}

/**
 * Encodes a frame whose values are all finite *as sent*: null when `values` hold NaN or
 * ±Infinity (such a snapshot is never sent), and a float64 frame instead of the float32
 * one asked for when a value does not fit in float32 (|v| above 3.4028234663852886e38
 * would arrive as ±Infinity). The check is on the encoded values, so what the receiver
 * decodes is finite whatever the dtype; the frame's dtype byte says which one it got.
 *
 * @example
 * const frame = encodeFiniteFrame('parameters', 'float32', 'deep', step, shape, model.params);
 * if (frame === null) sendDivergedEvent(); else socket.send(frame);
 */
export function encodeFiniteFrame(kind: FrameKind, dtype: FrameDtype, run: string, step: number, shape: FrameShape, values: Float64Array): Uint8Array | null {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return null;
  if (dtype === 'float64') return encodeFrame(kind, dtype, run, step, shape, values);
  const frame = encodeFrame(kind, 'float32', run, step, shape, values);
  const sent = new Float32Array(frame.buffer, frame.byteLength - values.length * 4, values.length);
  for (let i = 0; i < sent.length; i++) if (!Number.isFinite(sent[i])) return encodeFrame(kind, 'float64', run, step, shape, values);
  return frame;
}

/** Thrown for a frame that is not a well-formed `SGF1` frame. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
}

/** Decodes a frame as a client receives it: null for one that is malformed (the client counts and drops it). */
export function tryDecodeFrame(data: ArrayBuffer | ArrayBufferView): DecodedFrame | null {
  try {
    return decodeFrame(data);
  } catch {
    return null;
  }
}

/**
 * Decodes a frame. The values are viewed in place when the frame's buffer is aligned,
 * copied once otherwise. Throws `FrameError` for anything malformed.
 */
export function decodeFrame(data: ArrayBuffer | ArrayBufferView): DecodedFrame {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length < 24) throw new FrameError(`frame too short (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== FRAME_MAGIC) throw new FrameError('not an SGF1 frame (bad magic)');
  const kindCode = view.getUint8(4), dtypeCode = view.getUint8(5);
  const kind = (Object.keys(FRAME_KIND) as FrameKind[]).find((k) => FRAME_KIND[k] === kindCode);
  const dtype = (Object.keys(FRAME_DTYPE) as FrameDtype[]).find((k) => FRAME_DTYPE[k] === dtypeCode);
  if (kind === undefined) throw new FrameError(`unknown frame kind ${kindCode}`);
  if (dtype === undefined) throw new FrameError(`unknown dtype ${dtypeCode}`);
  const idLength = view.getUint16(6, true);
  const step = view.getFloat64(8, true);
  const L = view.getUint32(16, true);
  const inputSize = view.getUint32(20, true);
  if (L === 0 || inputSize === 0) throw new FrameError('frame describes an empty model');
  if (24 + 4 * L + idLength > bytes.length) throw new FrameError('frame header runs past its end');
  const units: number[] = [];
  let count = 0;
  let inputs = inputSize;
  for (let l = 0; l < L; l++) {
    const m = view.getUint32(24 + 4 * l, true);
    if (m === 0) throw new FrameError(`layer ${l} has no units`);
    units.push(m);
    count += m * inputs + m;
    inputs = m;
  }
  const run = decoder.decode(bytes.subarray(24 + 4 * L, 24 + 4 * L + idLength));
  const offset = headerLength(L, idLength);
  const width = dtype === 'float64' ? 8 : 4;
  if (bytes.length !== offset + count * width) {
    throw new FrameError(`frame holds ${bytes.length - offset} value bytes, its shape needs ${count * width}`);
  }
  // view in place when aligned (the usual case: ws hands over whole, fresh buffers), else copy once
  const aligned = (bytes.byteOffset + offset) % width === 0;
  const buffer = aligned ? bytes.buffer : bytes.slice(offset).buffer;
  const start = aligned ? bytes.byteOffset + offset : 0;
  const values = dtype === 'float64' ? new Float64Array(buffer, start, count) : new Float32Array(buffer, start, count);
  const layers: FrameLayer[] = [];
  let at = 0;
  inputs = inputSize;
  for (const m of units) {
    const weights = values.subarray(at, at + m * inputs);
    at += m * inputs;
    const bias = values.subarray(at, at + m);
    at += m;
    layers.push({ inputs, units: m, weights, bias });
    inputs = m;
  }
  return { kind, dtype, run, step, inputSize, values, layers };
}
