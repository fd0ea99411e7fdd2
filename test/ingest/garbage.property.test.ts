import { Readable } from 'node:stream';
import fc from 'fast-check';
import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { MemoryDeadLetters } from '../../core/dead-letter.ts';
import { FeatureMap } from '../../core/features.ts';
import { ingest } from '../../pipeline/ingest.ts';
import { Normalizer } from '../../core/normalizer.ts';
import { createIngestCounters, type IngestRecord } from '../../core/record.ts';
import { train } from '../../pipeline/train.ts';
import { createTrainer } from '../../core/trainer.ts';
import { ndjsonRecords } from '../../sources/ndjson.ts';
import { seededModel } from '../helpers/streams.ts';

const finite = fc.double({ min: -10, max: 10, noNaN: true });
const goodLine = fc.tuple(finite, finite, finite).map(([a, b, y]) => JSON.stringify({ x: [a, b], y: [y] }));
const namedGood = fc.tuple(finite, finite, finite).map(([a, b, y]) => JSON.stringify({ b, y, a }));
const nonNumber = fc.oneof(fc.string({ maxLength: 5 }), fc.constant(null), fc.boolean(), fc.constant({}), fc.constant([]));
/** Lines that must never reach the weights. */
const garbage = fc.oneof(
  fc.string({ maxLength: 30 }).filter((s) => { try { JSON.parse(s); return false; } catch { return s.trim() !== ''; } }), // not JSON
  fc.constantFrom('NaN', '{"x":[NaN,1],"y":[1]}', '{"x":[1,2],"y":[Infinity]}', '{"x":[1e309,1],"y":[0]}', '{"x":[1,2],"y":[-1e309]}'),
  fc.constantFrom('{"__proto__":{"x":[1,2],"y":[1]}}', '{"constructor":{"prototype":{"x":1}},"x":[1,2]}', '{"x":{"__proto__":[1,2]},"y":[1]}'),
  fc.array(finite, { maxLength: 5 }).filter((a) => a.length !== 2).map((x) => JSON.stringify({ x, y: [1] })), // wrong arity
  fc.tuple(nonNumber, finite).map(([v, f]) => JSON.stringify({ x: [f, v], y: [1] })),
  fc.tuple(finite, finite).map(([a, b]) => JSON.stringify({ x: [a, b] })),
  fc.constantFrom('[1,2,3]', '42', '"x"', 'null', 'true', '{}', '{"x":"1,2","y":"3"}'),
);

const hash = (p: Float64Array) => Buffer.from(p.buffer, p.byteOffset, p.byteLength).toString('base64');

async function feed(lines: string[], named: boolean, normalize: boolean) {
  const records: IngestRecord[] = [];
  for await (const r of ndjsonRecords(Readable.from([lines.join('\n')]))) records.push(r);
  const trainer = createTrainer({ model: seededModel(2, [[4, 'tanh'], [1, 'linear']], 1), loss: 'mse', optimizer: { type: 'adam', learningRate: 0.01 } });
  const counters = createIngestCounters();
  const deadLetters = new MemoryDeadLetters();
  const features = named ? new FeatureMap({ features: ['a', 'b'], targets: ['y'] }) : undefined;
  const normalizer = normalize ? new Normalizer({ inputs: 2, outputs: 1, target: true }) : undefined;
  const input = new Subject<IngestRecord>();
  let failure: unknown = null;
  input.pipe(ingest({ trainer, features, normalizer, deadLetters, counters }), train(trainer)).subscribe({ error: (e) => { failure = e; } });
  for (const record of records) {
    const before = hash(trainer.model.params);
    const rejected = counters.rejected;
    input.next(record);
    if (counters.rejected > rejected) expect(hash(trainer.model.params)).toBe(before); // a bad line never touches the weights
  }
  input.complete();
  return { records, trainer, counters, deadLetters, failure };
}

describe('garbage lines (property)', () => {
  for (const [name, named, normalize] of [['positional', false, false], ['named records, normalised', true, true]] as const) {
    it(`${name}: never throws, never changes weights on a bad line, and accounts for every line (trained + rejected = read)`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.oneof({ weight: 2, arbitrary: named ? namedGood : goodLine }, { weight: 3, arbitrary: garbage }), { maxLength: 60 }), async (lines) => {
          const { records, trainer, counters, deadLetters, failure } = await feed(lines, named, normalize);
          expect(failure).toBeNull();
          expect(counters.read).toBe(records.length);
          expect(trainer.counters.samples + counters.rejected).toBe(counters.read);
          expect(deadLetters.letters).toHaveLength(counters.rejected);
          expect(Array.from(trainer.model.params).every(Number.isFinite)).toBe(true);
          for (const letter of deadLetters.letters) expect(letter.line).toBeGreaterThanOrEqual(1);
          expect(({} as Record<string, unknown>).x).toBeUndefined();
        }),
        { numRuns: 150 },
      );
    });
  }
});
