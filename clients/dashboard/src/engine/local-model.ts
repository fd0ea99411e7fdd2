import type { Activation } from '../../../../pipeline/activations.ts';
import { jsKernels } from '../../../../pipeline/kernels-js.ts';
import { createModel, type Model } from '../../../../pipeline/model.ts';
import { forwardPass } from '../../../../pipeline/network.ts';
import { createWorkspace, ensureCapacity, type Workspace } from '../../../../pipeline/workspace.ts';
import type { RunInfo } from '../../../../server/protocol.ts';
import type { DecodedFrame } from '../../../../server/snapshot-frame.ts';

/**
 * The engine's own model and forward pass (`pipeline/model.ts`, `network.ts`, the JS
 * kernels), run in the page on the weights of a received frame: the decision surface and
 * fitted curve are the network's real outputs, computed with the same code that trains it.
 */
export class LocalModel {
  private model: Model | null = null;
  private ws: Workspace | null = null;
  private key = '';

  /** Loads a frame's weights into a model of the run's topology; false when the topology is not one the engine knows. */
  load(info: RunInfo, frame: DecodedFrame): boolean {
    const key = JSON.stringify(info.topology);
    if (key !== this.key) {
      this.key = key;
      try {
        const topology = { inputSize: info.topology.inputSize, layers: info.topology.layers.map((l) => ({ units: l.units, activation: l.activation as Activation })) };
        this.model = createModel(topology, jsKernels);
        this.ws = createWorkspace(this.model, 1, jsKernels.allocate);
      } catch {
        this.model = null;
        this.ws = null;
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
    ensureCapacity(ws, model, rows);
    forwardPass(jsKernels, model, ws, rows, inputs);
    out.set(ws.a[model.layers.length - 1].subarray(0, rows * model.outputSize));
    return true;
  }
}
