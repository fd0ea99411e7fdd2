import { filter, type OperatorFunction } from 'rxjs';
import { checkSample, type Rejection, type Sample, type SampleShape } from '../core/sample.ts';

/**
 * Lets through only samples that fit the model: the right number of finite numbers in
 * `x` and `y`. Every other value goes to `onReject` with a typed error naming the field
 * (`SG_ERR_ARITY`, `SG_ERR_NONFINITE_INPUT`, `SG_ERR_TYPE`, `SG_ERR_MISSING`) and the
 * stream goes on. Nothing is coerced, padded or truncated.
 *
 * @param shape how many features and targets the model takes
 * @param onReject the side channel for turned-away values
 */
export function validate(shape: SampleShape, onReject: (rejection: Rejection) => void): OperatorFunction<unknown, Sample> {
  return filter((value): value is Sample => {
    const error = checkSample(value, shape);
    if (error === null) return true;
    onReject({ error, sample: value });
    return false;
  });
}
