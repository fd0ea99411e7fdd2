import { ACTIVATIONS, isActivation } from '../core/activations.ts';
import { StreamgradError } from '../core/errors.ts';
import { checkTopology, type LayerSpec, type Topology } from '../core/model.ts';
import { invalid } from './errors.ts';

/**
 * Reads the `--layers` spec: the input size, then `units:activation` per layer, first to
 * last, comma-separated.
 *
 * @example parseLayers('3,16:relu,16:relu,1:linear')
 * // → { inputSize: 3, layers: [{units: 16, activation: 'relu'}, {units: 16, activation: 'relu'}, {units: 1, activation: 'linear'}] }
 */
export function parseLayers(spec: string, option = '--layers'): Topology {
  const parts = spec.split(',').map((p) => p.trim());
  const example = 'e.g. 3,16:relu,16:relu,1:linear';
  if (parts.length < 2) invalid(option, `needs the input size and at least one layer, ${example}; got ${JSON.stringify(spec)}`);
  const inputSize = count(parts[0]);
  if (inputSize === null) invalid(option, `must start with the input size, a positive integer, ${example}; got ${JSON.stringify(parts[0])}`);
  const layers: LayerSpec[] = parts.slice(1).map((part, i) => {
    const at = `layer ${i + 1} (${JSON.stringify(part)})`;
    const [unitsText, activation, extra] = part.split(':');
    const units = count(unitsText);
    if (units === null || activation === undefined || extra !== undefined) {
      invalid(option, `${at} must be units:activation, e.g. 16:relu`);
    }
    if (!isActivation(activation)) {
      invalid(option, `${at}: unknown activation ${JSON.stringify(activation)}; use ${ACTIVATIONS.join(', ')}`);
    }
    return { units, activation };
  });
  const topology = { inputSize, layers };
  try {
    checkTopology(topology); // the bounds: units per layer, parameters in all
  } catch (error) {
    if (!(error instanceof StreamgradError)) throw error;
    const detail = error.message
      .replace(/^layers\[(\d+)\]\.units: /, (_, i: string) => `layer ${Number(i) + 1}: units `)
      .replace(/^inputSize: /, 'the input size ')
      .replace(/^layers: /, '');
    invalid(option, detail);
  }
  return topology;
}

function count(text: string): number | null {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  return Number.isSafeInteger(n) && n >= 1 ? n : null;
}
