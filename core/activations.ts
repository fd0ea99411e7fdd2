/**
 * The activation functions a layer can apply elementwise to z = Wx + b.
 * The numeric loops live in the kernel backend (`kernels.ts`); this file says what
 * each name means and where it may be used.
 *
 * | name         | a = f(z)                         | f'(z) used by backprop        |
 * |--------------|----------------------------------|-------------------------------|
 * | `linear`     | z                                | 1                             |
 * | `sigmoid`    | 1 / (1 + e^-z)                   | a (1 - a)                     |
 * | `tanh`       | tanh z                           | 1 - a²                        |
 * | `relu`       | max(z, 0)                        | 1 if z > 0 else 0             |
 * | `leaky_relu` | z if z > 0 else 0.01 z           | 1 if z > 0 else 0.01          |
 * | `sign`       | Math.sign(z) (the perceptron)    | none: trained by the perceptron rule only |
 * | `softmax`    | e^(z_k - max z) / Σ e^(z_j - max z) over the layer | full Jacobian; last layer only |
 */
export const ACTIVATIONS = ['linear', 'sigmoid', 'tanh', 'relu', 'leaky_relu', 'sign', 'softmax'] as const;
/** The name of a layer's activation function (see `ACTIVATIONS`). */
export type Activation = (typeof ACTIVATIONS)[number];

/** Slope of `leaky_relu` for z ≤ 0 (PyTorch's default). */
export const LEAKY_RELU_SLOPE = 0.01;

/** Whether `name` is one of `ACTIVATIONS` (for checking untrusted model files and options). */
export function isActivation(name: unknown): name is Activation {
  return typeof name === 'string' && (ACTIVATIONS as readonly string[]).includes(name);
}
