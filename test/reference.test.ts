import { from } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { backward } from '../operators/backward.ts';
import { batch } from '../operators/batch.ts';
import { forward } from '../operators/forward.ts';
import { loss } from '../operators/loss.ts';
import { update } from '../operators/update.ts';
import { modelFromJSON } from '../pipeline/model-file.ts';
import { createTrainer } from '../core/trainer.ts';
import { expectClose, expectModelClose, loadFixtures } from './helpers/reference.ts';

const fixtures = loadFixtures();

describe('PyTorch reference fixtures, replayed through the real operators', () => {
  it('finds the public fixtures', () => {
    expect(fixtures.map((f) => f.name)).toEqual(expect.arrayContaining([
      'logistic-sgd-b1', 'perceptron-sign', 'wide-sigmoid-mse-sgd-b1', 'michaelis-menten-relu-adam-b4',
      'deep-tanh-momentum-b8', 'softmax-ce-sgd-b5-partial', 'xor-long',
    ]));
  });

  for (const fx of fixtures) {
    it(`${fx.name}: outputs, loss, first gradients and the model after every step match to 1e-9`, async () => {
      const model = modelFromJSON(fx.model);
      const trainer = createTrainer({ model, loss: fx.loss, optimizer: fx.optimizer });
      let s = 0;
      await new Promise<void>((resolve, reject) => {
        from(fx.samples)
          .pipe(batch(fx.batchSize), forward(trainer), loss(trainer), backward(trainer), update(trainer))
          .subscribe({
            next(step) {
              const ref = fx.steps[s];
              const at = `${fx.name} step ${s}`;
              expect(step.size, `${at}: size`).toBe(ref.size);
              if (ref.outputs) expectClose(step.outputs, ref.outputs.flat(), `${at} outputs`);
              expectClose([step.loss], [ref.loss], `${at} loss`);
              if (ref.gradients) {
                const g = step.gradients!;
                ref.gradients.forEach((rg, l) => {
                  const layer = model.layers[l];
                  expectClose(g.subarray(layer.weightOffset, layer.biasOffset), rg.weights.flat(), `${at} gradients[${l}].weights`);
                  expectClose(g.subarray(layer.biasOffset, layer.biasOffset + layer.outputs), rg.bias, `${at} gradients[${l}].bias`);
                });
              }
              expect(step.updated, `${at}: updated`).toBe(true);
              expectModelClose(model.layers as never, ref.model, `${at} model`);
              s++;
            },
            error: reject,
            complete: resolve,
          });
      });
      expect(s).toBe(fx.steps.length);
    });
  }
});
