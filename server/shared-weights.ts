/**
 * A model's parameters and last gradients in shared memory, published by the thread that
 * trains and read by others (the server thread), never half-updated: a seqlock. The
 * writer bumps a sequence number to odd, copies, and bumps it back to even; a reader
 * copies into arrays of its own and keeps the copy only when the number was even and
 * unchanged around it. What a reader holds is then an immutable copy of the weights as
 * they were at one step boundary (the writer only publishes there), which is what a
 * reader needs to encode snapshots, or to serve predictions from.
 *
 * One writer per instance. Readers never block the writer; a reader that meets a write
 * in progress waits for it (a copy of a few hundred kilobytes at most).
 *
 * @example
 * // training thread
 * const shared = new SharedWeights(model.params.length);
 * shared.write(model.params, trainer.workspace.grads);
 * worker.postMessage({ weights: shared.buffer });
 * // server thread
 * const view = new SharedWeights(buffer), params = new Float64Array(view.length), grads = new Float64Array(view.length);
 * const version = view.read(params, grads);
 */
export class SharedWeights {
  readonly buffer: SharedArrayBuffer;
  /** Parameters per array. */
  readonly length: number;
  /** [0]: the sequence number (odd while a write is in progress). */
  private readonly sequence: Int32Array;
  private readonly data: Float64Array;

  /** A new block for `length` parameters, or a view of one made elsewhere. */
  constructor(lengthOrBuffer: number | SharedArrayBuffer) {
    this.buffer = typeof lengthOrBuffer === 'number' ? new SharedArrayBuffer(8 + 16 * lengthOrBuffer) : lengthOrBuffer;
    this.length = (this.buffer.byteLength - 8) / 16;
    if (!Number.isSafeInteger(this.length) || this.length < 0) throw new RangeError(`SharedWeights: a buffer of ${this.buffer.byteLength} bytes is not one of these`);
    this.sequence = new Int32Array(this.buffer, 0, 2);
    this.data = new Float64Array(this.buffer, 8, 2 * this.length);
  }

  /** Versions written so far. */
  get version(): number {
    return Atomics.load(this.sequence, 0) >>> 1;
  }

  /** Publishes `params` and `grads` (each `length` long); the writer's thread only. */
  write(params: Float64Array, grads: Float64Array): number {
    Atomics.add(this.sequence, 0, 1);
    this.data.set(params, 0);
    this.data.set(grads, this.length);
    const sequence = Atomics.add(this.sequence, 0, 1) + 1;
    Atomics.notify(this.sequence, 0);
    return sequence >>> 1;
  }

  /**
   * Copies the newest complete version into `params` and `grads` and returns its number.
   * Waits (Atomics.wait, so not on a browser's main thread) while a write is in progress.
   */
  read(params: Float64Array, grads: Float64Array): number {
    for (;;) {
      const before = Atomics.load(this.sequence, 0);
      if ((before & 1) === 1) {
        // a write in progress: sleep until it ends (notified), at most 1 ms at a time
        Atomics.wait(this.sequence, 0, before, 1);
        continue;
      }
      params.set(this.data.subarray(0, this.length));
      grads.set(this.data.subarray(this.length));
      if (Atomics.load(this.sequence, 0) === before) return before >>> 1;
    }
  }
}
