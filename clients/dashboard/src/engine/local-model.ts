import type { Activation } from '../../../../core/activations.ts';
import { jsKernels } from '../../../../core/kernels-js.ts';
import type { Kernels } from '../../../../core/kernels.ts';
import { createModel, type Model } from '../../../../core/model.ts';
import { forwardPass } from '../../../../core/network.ts';
import { createWorkspace, type Workspace } from '../../../../core/workspace.ts';
import type { RunInfo } from '../../../../server/protocol.ts';
import type { DecodedFrame } from '../../../../server/snapshot-frame.ts';

/**
 * Rows per forward pass. It bounds the workspace whatever the number of rows asked for
 * (the 2-D surface is 4,096): with the WebAssembly kernels the workspace lives in the
 * page's WebAssembly memory, which has a fixed size there (see core/kernels-wasm.ts).
 */
export const ROWS_PER_PASS = 256;

/**
 * The engine's own model and forward pass (`core/model.ts`, `network.ts`), run in the
 * page on the weights of a received frame with the page's kernels (WebAssembly SIMD where
 * the browser has it, see main.ts): the decision surface and fitted curve are the network's
 * real outputs, computed with the same code that trains it.
 */
export class LocalModel {
  private model: Model | null = null;
  private ws: Workspace | null = null;
  private key = '';
  /** The kernels of the current model: the page's, or js for a model too large for the page's WebAssembly memory. */
  private kernels: Kernels;

  constructor(private readonly pageKernels: Kernels) {
    this.kernels = pageKernels;
  }

  /** The name of the kernels that compute the outputs (`wasm` or `js`). */
  get backend(): string {
    return this.kernels.name;
  }

  /** Loads a frame's weights into a model of the run's topology; false when the topology is not one the engine knows. */
  load(info: RunInfo, frame: DecodedFrame): boolean {
    const key = JSON.stringify(info.topology);
    if (key !== this.key) {
      this.key = key;
      this.model = null;
      this.ws = null;
      const topology = { inputSize: info.topology.inputSize, layers: info.topology.layers.map((l) => ({ units: l.units, activation: l.activation as Activation })) };
      // a model too large for the fixed WebAssembly memory runs on the js kernels; a topology
      // the engine does not know fails with both
      for (const kernels of this.pageKernels === jsKernels ? [jsKernels] : [this.pageKernels, jsKernels]) {
        try {
          this.model = createModel(topology, kernels);
          this.ws = createWorkspace(this.model, ROWS_PER_PASS, kernels.allocate);
          this.kernels = kernels;
          break;
        } catch {
          this.model = null;
          this.ws = null;
        }
      }
    }
    if (this.model === null || frame.values.length !== this.model.params.length) return false;
    this.model.params.set(frame.values);
    return true;
  }

  get outputSize(): number {
    return this.model?.outputSize ?? 0;
  }

  /** Outputs for `rows` rows of `inputs` (rows × inputSize) into `out` (rows × outputSize). */
  evaluate(inputs: Float64Array, rows: number, out: Float64Array): boolean {
    const model = this.model, ws = this.ws;
    if (model === null || ws === null || rows < 1) return false;
    const n = model.inputSize, m = model.outputSize, last = ws.a.length - 1;
    for (let start = 0; start < rows; start += ROWS_PER_PASS) {
      const count = Math.min(ROWS_PER_PASS, rows - start);
      // the inputs go into the workspace first: there they are in the kernels' memory, and
      // the WebAssembly kernels run the whole pass in one call instead of copying per layer
      ws.x.set(inputs.subarray(start * n, (start + count) * n));
      forwardPass(this.kernels, model, ws, count, ws.x);
      out.set(ws.a[last].subarray(0, count * m), start * m);
    }
    return true;
  }
}
