import { StreamgradError } from '../core/errors.ts';
import type { ExportFormat } from './export-file.ts';
import { onnxGraph } from './export-onnx.ts';
import { tfjsLayers } from './export-tfjs.ts';
import type { ModelArtifact } from './model-artifact.ts';

/** What exporting an artifact to one format would give (for `streamgrad inspect`). */
export interface ExportPlan {
  readonly format: ExportFormat;
  /** Null when the format cannot hold the model; `refused` says why. */
  readonly steps: readonly string[] | null;
  /** Why the format refuses the model (`layers[1].activation: sign has no TensorFlow.js layer; …`). */
  readonly refused?: string;
  /** The inputs and outputs the exported model has. */
  readonly inputs: string;
  readonly outputs: string;
  /** What the exported model does not do that streamgrad does. */
  readonly notes: readonly string[];
}

/**
 * What `exportModel` would write for each format, without writing anything: the ONNX
 * nodes and the TF.js layers, one line each (`Gemm z0: layers[0] dense 3 → 6: z = Wx + b`),
 * or why a format refuses the model.
 *
 * @example exportPlans(artifact).map((p) => `${p.format}: ${p.steps?.length ?? p.refused}`);
 */
export function exportPlans(artifact: ModelArtifact): ExportPlan[] {
  const graph = onnxGraph(artifact);
  const shape = (s: readonly (number | string)[]) => `[${s.join(', ')}]`;
  const onnx: ExportPlan = {
    format: 'onnx',
    steps: graph.nodes.map((n) => `${n.op} ${n.outputs.join(', ')}: ${n.doc}`),
    inputs: graph.inputs.map((v) => `${v.name} ${shape(v.shape)}`).join(', '),
    outputs: graph.outputs.map((v) => `${v.name} ${shape(v.shape)}`).join(', '),
    notes: [],
  };
  const n = artifact.model.inputSize, m = artifact.model.outputSize;
  let tfjs: ExportPlan;
  try {
    const { layers, notes } = tfjsLayers(artifact);
    tfjs = {
      format: 'tfjs',
      steps: layers.map((l) => `${l.className} ${l.name}${l.kernel === undefined ? '' : ` ${l.kernel.shape[0]} → ${l.kernel.shape[1]}`}: ${l.doc}`),
      inputs: `[batch, ${n}]`,
      outputs: `[batch, ${m}]`,
      notes,
    };
  } catch (error) {
    if (!(error instanceof StreamgradError)) throw error;
    tfjs = { format: 'tfjs', steps: null, refused: error.message, inputs: `[batch, ${n}]`, outputs: `[batch, ${m}]`, notes: [] };
  }
  return [onnx, tfjs];
}
