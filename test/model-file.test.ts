/**
 * The `streamgrad/model@1` file (test/fixtures/reference/FORMAT.md): exact round trips, and strict
 * validation where every rejection is a `StreamgradError` with code `SG_ERR_MODEL` and a
 * `field` that names the offending place (STYLE 10: name the field and both shapes).
 */
import { describe, expect, it } from 'vitest';
import { ACTIVATIONS } from '../core/activations.ts';
import { type ModelDocument, modelFromJSON, modelToJSON } from '../pipeline/model-file.ts';
import { Rng } from '../core/rng.ts';
import { buildModel, expectStreamgradError, naivePredict, paramsHash, pick, randInt } from './helpers/math.ts';

type Mutable = { format?: unknown; inputSize?: unknown; layers?: unknown } & Record<string, unknown>;
type MutableLayer = { activation: unknown; weights: unknown[]; bias: unknown[] };

/** A valid 3-input document: layer 0 is 4×3, layer 1 is 2×4, as fresh plain objects. */
function validDoc(): Mutable & { layers: MutableLayer[] } {
  const model = buildModel(3, [{ units: 4, activation: 'tanh' }, { units: 2, activation: 'sigmoid' }], 8);
  return JSON.parse(JSON.stringify(modelToJSON(model)));
}

describe('modelToJSON / modelFromJSON round trip', () => {
  it('is bitwise exact, directly and through JSON.stringify / JSON.parse, for random models', () => {
    const rng = new Rng(1);
    for (let trial = 0; trial < 40; trial++) {
      const depth = randInt(rng, 1, 4);
      const layers = Array.from({ length: depth }, (_, l) => ({
        units: randInt(rng, 1, 7),
        activation: l === depth - 1 ? pick(rng, ACTIVATIONS) : pick(rng, ACTIVATIONS.filter((a) => a !== 'softmax')),
      }));
      const model = buildModel(randInt(rng, 1, 7), layers, trial);
      // values of every magnitude, including subnormals and the extremes of float64
      for (let q = 0; q < model.params.length; q++) {
        if (rng.next() < 0.3) model.params[q] *= 10 ** randInt(rng, -300, 300);
      }
      model.params[0] = pick(rng, [5e-324, -Number.MAX_VALUE, 0.1 + 0.2, 1 / 3, 0]);
      const direct = modelFromJSON(modelToJSON(model));
      const text = JSON.stringify(modelToJSON(model));
      const reread = modelFromJSON(JSON.parse(text));
      expect(paramsHash(direct.params)).toBe(paramsHash(model.params));
      expect(paramsHash(reread.params)).toBe(paramsHash(model.params));
      expect(reread.layers.map((l) => [l.inputs, l.outputs, l.activation])).toEqual(model.layers.map((l) => [l.inputs, l.outputs, l.activation]));
      expect(JSON.stringify(modelToJSON(reread))).toBe(text); // and writing again gives the same text
    }
  });

  it('writes FORMAT.md\'s layout: weights as m rows of n numbers (PyTorch nn.Linear.weight), bias of m', () => {
    const doc: ModelDocument = {
      format: 'streamgrad/model@1', inputSize: 2,
      layers: [
        { activation: 'relu', weights: [[0.1, -0.2], [0.3, 0.4], [0.5, 0.6]], bias: [0.0, 0.1, 0.2] },
        { activation: 'linear', weights: [[1.0, 2.0, 3.0]], bias: [0.5] },
      ],
    };
    const model = modelFromJSON(doc);
    expect(modelToJSON(model)).toEqual(doc);
    // z_i = Σ_j weights[i][j]·x_j + bias[i]: x = (1, 2) → hidden relu(−0.3, 1.2, 1.9) = (0, 1.2, 1.9) → 0 + 2.4 + 5.7 + 0.5
    expect(Math.abs(naivePredict(model, [1, 2])[0] - 8.6)).toBeLessThan(1e-12);
    expect(model.layers[0].weights[1]).toBe(-0.2); // row-major: neuron 0's second weight
  });

  it('the loaded model owns its numbers: editing the document afterwards changes nothing', () => {
    const doc = validDoc();
    const model = modelFromJSON(doc);
    const before = paramsHash(model.params);
    (doc.layers[0].weights[0] as number[])[0] = 999;
    doc.layers[1].bias[0] = 999;
    expect(paramsHash(model.params)).toBe(before);
  });

  it('-0 survives the direct round trip (JSON text itself writes -0 as 0)', () => {
    const model = buildModel(1, [{ units: 1, activation: 'linear' }], 1);
    model.params[0] = -0;
    expect(Object.is(modelFromJSON(modelToJSON(model)).params[0], -0)).toBe(true);
  });
});

describe('modelFromJSON: strict validation (SG_ERR_MODEL with a field)', () => {
  const reject = (doc: unknown, field: string, ...inMessage: string[]) => {
    const e = expectStreamgradError(() => modelFromJSON(doc), 'SG_ERR_MODEL');
    expect(e.field).toBe(field);
    for (const part of [field, ...inMessage]) expect(e.message, `message should contain ${part}`).toContain(part);
    return e;
  };

  it('rejects input that is not an object', () => {
    for (const bad of [null, undefined, 42, 'streamgrad/model@1', [], [validDoc()], true]) reject(bad, 'model');
  });

  it('rejects a wrong or missing format tag', () => {
    for (const format of ['streamgrad/model@2', 'streamgrad/reference@1', '', undefined, 1]) {
      const doc = validDoc();
      doc.format = format;
      reject(doc, 'format', 'streamgrad/model@1');
    }
  });

  it('rejects an inputSize that is not a positive integer', () => {
    for (const inputSize of [0, -3, 2.5, NaN, Infinity, '3', null, undefined, 2 ** 53]) {
      const doc = validDoc();
      doc.inputSize = inputSize;
      reject(doc, 'inputSize');
    }
  });

  it('rejects empty or missing layer lists and layers that are not objects', () => {
    for (const layers of [[], undefined, null, {}, 'dense']) {
      const doc = validDoc();
      (doc as Mutable).layers = layers;
      reject(doc, 'layers');
    }
    const doc = validDoc();
    (doc.layers as unknown[])[1] = [1, 2];
    reject(doc, 'layers[1]');
  });

  it('rejects an unknown activation, naming the layer', () => {
    for (const activation of ['gelu', 'ReLU', '', null, undefined, 3]) {
      const doc = validDoc();
      doc.layers[1].activation = activation;
      reject(doc, 'layers[1].activation');
    }
  });

  it('rejects softmax anywhere but the last layer', () => {
    const doc = validDoc();
    doc.layers[0].activation = 'softmax';
    reject(doc, 'layers[0].activation', 'softmax');
    const ok = validDoc();
    ok.layers[1].activation = 'softmax';
    expect(modelFromJSON(ok).layers[1].activation).toBe('softmax');
  });

  it('rejects a weight row of the wrong length, naming the layer and both shapes', () => {
    // layer 1 takes the 4 outputs of layer 0: expected 2×4; give it rows of 5
    const doc = validDoc();
    doc.layers[1].weights = (doc.layers[1].weights as number[][]).map((row) => [...row, 0.5]);
    reject(doc, 'layers[1].weights', '2×5', '2×4');
    // the brief's example: a 3-neuron layer over 4 inputs with rows of 5
    const three = { format: 'streamgrad/model@1', inputSize: 2, layers: [
      { activation: 'tanh', weights: [[1, 2], [3, 4], [5, 6], [7, 8]], bias: [0, 0, 0, 0] },
      { activation: 'linear', weights: [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]], bias: [0, 0, 0] },
    ] };
    reject(three, 'layers[1].weights', 'layers[1]', '3×5', '3×4');
    // first layer against inputSize; a single short row among good ones
    const first = validDoc();
    (first.layers[0].weights as number[][])[2] = [1, 2];
    reject(first, 'layers[0].weights', '4×2', '4×3');
  });

  it('rejects weights that are not a non-empty array of arrays', () => {
    for (const weights of [[], undefined, 'w', [[1, 2, 3], 'row', [1, 2, 3], [1, 2, 3]]]) {
      const doc = validDoc();
      doc.layers[0].weights = weights as unknown[];
      const e = expectStreamgradError(() => modelFromJSON(doc), 'SG_ERR_MODEL');
      expect(e.field!.startsWith('layers[0].weights')).toBe(true);
    }
  });

  it('rejects a bias of the wrong length or type, naming the layer and the expected length', () => {
    const doc = validDoc();
    doc.layers[1].bias = [0.1, 0.2, 0.3];
    reject(doc, 'layers[1].bias', '3', '2');
    const short = validDoc();
    short.layers[0].bias = [];
    reject(short, 'layers[0].bias');
    const missing = validDoc();
    missing.layers[0].bias = undefined as unknown as unknown[];
    reject(missing, 'layers[0].bias');
  });

  it('rejects NaN, ±Infinity, strings, null, booleans and missing entries among the numbers, with the exact path', () => {
    for (const bad of [NaN, Infinity, -Infinity, '0.5', null, true, undefined, {}, [1]]) {
      const doc = validDoc();
      (doc.layers[0].weights as unknown[][])[1][2] = bad;
      reject(doc, 'layers[0].weights[1][2]');
      const b = validDoc();
      b.layers[1].bias[1] = bad;
      reject(b, 'layers[1].bias[1]');
    }
  });

  it('rejects holes (sparse arrays) anywhere in the document instead of loading NaN parameters or dropping layers', () => {
    // [0.1, <hole>, 0.3] has length 3 but no element 1: forEach skips the hole, so nothing checks it,
    // and Float64Array.set() then reads undefined there and stores NaN
    const outcome = (doc: unknown): string => {
      try {
        const model = modelFromJSON(doc);
        return `accepted: ${model.layers.length} layer(s), ${Array.from(model.params).filter(Number.isNaN).length} NaN parameter(s)`;
      } catch (e) {
        return (e as { code?: string }).code === 'SG_ERR_MODEL' ? 'rejected' : `threw ${String(e)}`;
      }
    };
    const holeInRow = validDoc();
    const row: unknown[] = [0.1, 0.2, 0.3];
    delete row[1];
    (holeInRow.layers[0].weights as unknown[][])[2] = row;
    const sparseBias = validDoc();
    sparseBias.layers[1].bias = new Array(2); // length 2, no elements at all
    const holeRow = validDoc();
    delete (holeRow.layers[0].weights as unknown[])[1];
    // holes in the layer list: a model must not silently lose a layer, nor fail with a TypeError
    const trailingLayerHole = validDoc();
    trailingLayerHole.layers.length = 3;
    const middleLayerHole = validDoc();
    (middleLayerHole as Mutable).layers = [middleLayerHole.layers[0], , middleLayerHole.layers[1]];
    const cases = {
      'layers[0].weights[2][1] hole': outcome(holeInRow),
      'layers[1].bias all holes': outcome(sparseBias),
      'layers[0].weights[1] hole (a missing row)': outcome(holeRow),
      'layers[2] hole (trailing)': outcome(trailingLayerHole),
      'layers[1] hole (between two layers)': outcome(middleLayerHole),
    };
    expect(cases).toEqual(Object.fromEntries(Object.keys(cases).map((k) => [k, 'rejected'])));
  });

  it('every rejection above is a StreamgradError with code SG_ERR_MODEL (never a TypeError)', () => {
    const rng = new Rng(3);
    const garbage = [null, 0, -1, 1.5, 'x', true, [], {}, [[]], NaN];
    let rejected = 0;
    for (let trial = 0; trial < 300; trial++) {
      const doc = validDoc();
      const where = randInt(rng, 0, 5);
      const value = pick(rng, garbage);
      const layer = doc.layers[randInt(rng, 0, 1)];
      if (where === 0) doc.inputSize = value;
      else if (where === 1) layer.activation = value;
      else if (where === 2) layer.weights = value as unknown[];
      else if (where === 3) layer.bias = value as unknown[];
      else if (where === 4) (layer.weights[0] as unknown[])[0] = value;
      else layer.bias[0] = value;
      try {
        modelFromJSON(doc);
      } catch (e) {
        expect(e).toMatchObject({ name: 'StreamgradError', code: 'SG_ERR_MODEL' });
        expect(typeof (e as { field?: unknown }).field).toBe('string');
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(250); // a few garbage values are valid in some places (e.g. 0 as a weight)
  });
});

describe('modelFromJSON and prototype pollution', () => {
  it('__proto__ keys in a parsed document do not reach Object.prototype', () => {
    const doc = validDoc();
    const text = JSON.stringify(doc)
      .replace('{"format"', '{"__proto__":{"polluted":"yes","format":"evil"},"format"')
      .replace('{"activation"', '{"__proto__":{"pollutedLayer":true},"activation"');
    const parsed = JSON.parse(text);
    expect(Object.prototype.hasOwnProperty.call(parsed, '__proto__')).toBe(true); // JSON.parse makes it an own key
    const model = modelFromJSON(parsed);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).pollutedLayer).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(paramsHash(model.params)).toBe(paramsHash(modelFromJSON(doc).params));
  });

  it('fields hidden under __proto__ are not inherited: a document made only of them is rejected', () => {
    const parsed = JSON.parse(`{"__proto__": ${JSON.stringify(validDoc())}}`);
    const e = expectStreamgradError(() => modelFromJSON(parsed), 'SG_ERR_MODEL');
    expect(e.field).toBe('format');
    expect(({} as Record<string, unknown>).format).toBeUndefined();
  });

  it('a constructor.prototype key is only data', () => {
    const doc = validDoc() as Record<string, unknown>;
    const parsed = JSON.parse(JSON.stringify({ ...doc, constructor: { prototype: { polluted2: 1 } } }));
    modelFromJSON(parsed);
    expect(({} as Record<string, unknown>).polluted2).toBeUndefined();
  });
});

describe('numbers from text', () => {
  it('1e309 in a model file becomes Infinity and is rejected', () => {
    const text = JSON.stringify(validDoc()).replace(/("bias":\[)[^,\]]+/, '$11e309');
    const e = expectStreamgradError(() => modelFromJSON(JSON.parse(text)), 'SG_ERR_MODEL');
    expect(e.field).toBe('layers[0].bias[0]');
  });

  it('integer-valued numbers written as 1.0 load as 1', () => {
    const text = '{"format":"streamgrad/model@1","inputSize":2.0,"layers":[{"activation":"linear","weights":[[1.0,-2.0]],"bias":[0.0]}]}';
    const model = modelFromJSON(JSON.parse(text));
    expect(Array.from(model.params)).toEqual([1, -2, 0]);
  });
});
