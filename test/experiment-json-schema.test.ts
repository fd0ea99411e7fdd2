import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { experimentJsonSchema } from '../runtime/experiment-schema.ts';
import { planExperiment } from '../runtime/experiment-plan.ts';

/**
 * The JSON Schema of config files (experiment.schema.json, shipped in the package) is
 * generated from the zod schema, kept up to date, named by every example's `$schema`, and
 * holds every example; a config with a mistake the schema can see fails it.
 */
const root = resolve(import.meta.dirname, '..');
const shipped = JSON.parse(readFileSync(join(root, 'experiment.schema.json'), 'utf8')) as Record<string, unknown>;
const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.json'));
const validate = new Ajv2020({ allErrors: true, strict: false }).compile(shipped);

describe('experiment.schema.json', () => {
  it('is what the zod schema generates (npm run build:schema writes it)', () => {
    expect(shipped).toEqual(JSON.parse(JSON.stringify(experimentJsonSchema())));
  });

  it('is shipped in the package and exported as streamgrad/experiment.schema.json', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[]; exports: Record<string, unknown> };
    expect(pkg.files).toContain('experiment.schema.json');
    expect(pkg.exports['./experiment.schema.json']).toBe('./experiment.schema.json');
  });

  it.each(examples)('examples/%s names it in $schema, validates against it, and is a config streamgrad accepts', async (name) => {
    const doc = JSON.parse(readFileSync(join(root, 'examples', name), 'utf8')) as Record<string, unknown>;
    expect(doc.$schema).toBe('../experiment.schema.json');
    expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
    const planned = await planExperiment(join(root, 'examples', name));
    expect(planned.ok, JSON.stringify(!planned.ok && planned.problems)).toBe(true);
  });

  it('refuses what an editor should flag: unknown keys, wrong types, values outside the lists', () => {
    const base = { source: { simulated: 'xor' }, models: [{ layers: '2,4:tanh,1:sigmoid', loss: 'bce' }] };
    expect(validate(base), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...base, modles: [] })).toBe(false);
    expect(validate({ ...base, models: [{ layers: '2,1:sigmoid', loss: 'hinge' }] })).toBe(false);
    expect(validate({ ...base, models: [{ layers: [{ units: 'four', activation: 'relu' }] }] })).toBe(false);
    expect(validate({ ...base, evaluation: { window: 0 } })).toBe(false);
    expect(validate({ ...base, source: { csv: 'a.csv', targets: ['y'], normalise: true } })).toBe(false);
    expect(validate({ ...base, server: { port: 8080, keepServing: 'yes' } })).toBe(false);
  });
});
