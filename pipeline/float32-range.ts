import { StreamgradError } from '../core/errors.ts';

/**
 * Refuses to write as float32 a number that float32 cannot hold: one that is finite in
 * float64 but beyond ±3.4e38 rounds to ±Infinity, and an exported model holding it answers
 * ±Infinity or NaN where streamgrad answers a number (a weight of 1e300 times a small
 * input is finite in float64). `SG_ERR_EXPORT` with `field`, naming the tensor, the index
 * and the value. Values that are not finite to begin with are the caller's (NaN guards).
 *
 * @example checkFloat32Range(layer.weights, 'W0', 'dtype', 'export as float64');
 * @param values what is about to be written as float32
 * @param tensor the tensor's name in the exported model, for the message
 * @param field the `StreamgradError` field: what the caller can change (`dtype`), or the tensor
 * @param instead what to do instead, for the message
 */
export function checkFloat32Range(values: ArrayLike<number>, tensor: string, field: string, instead: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v) && !Number.isFinite(Math.fround(v))) {
      throw new StreamgradError('SG_ERR_EXPORT', `${field}: float32 cannot hold ${tensor}[${i}] = ${v} (beyond ±3.4e38, it would be ${v > 0 ? '' : '-'}Infinity); ${instead}`, field);
    }
  }
}
