import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readLabelsFile } from '../../server/labels-file.ts';
import { type ModelVersion, ModelVersions } from '../../server/model-versions.ts';
import { labelsFromJSON, labelsToJSON } from '../../server/version-labels.ts';
import { topologyOf } from '../../core/model.ts';
import { regression } from './artifacts.ts';

/** The versions store behind predictions (issue 12): monotonic, immutable, bounded, labels with a history for rollback. */
const topology = { inputSize: 2, layers: [{ units: 1, activation: 'linear' as const }] };
const params = (v: number) => Float64Array.of(v, v, v);

describe('ModelVersions', () => {
  it('the same weights with other preprocessing (serve --watch: a file rewritten without, or with other, statistics) is a new version', () => {
    // before: offer compared step, samples and weights only, so the file's new preprocessing was
    // ignored and the server went on answering through the old one, saying nothing
    const artifact = regression();
    const store = new ModelVersions('m', topologyOf(artifact.model));
    const { params } = artifact.model;
    expect(store.offer(params, artifact.preprocessing, { step: 0, samples: 0, time: 1 })?.version).toBe(1);
    expect(store.offer(params, null, { step: 0, samples: 0, time: 2 })?.version).toBe(2);
    expect(store.offer(params, artifact.preprocessing, { step: 0, samples: 0, time: 3 })?.version).toBe(3);
    expect(store.offer(params, regression().preprocessing, { step: 0, samples: 0, time: 4 })).toBeNull();
    expect((store.resolve('latest') as ModelVersion).artifact.preprocessing).toBe(artifact.preprocessing);
  });

  it('numbers versions 1, 2, 3…; the same step, samples and weights make none; a version is a copy, never changed by later writes', () => {
    const store = new ModelVersions('m', topology);
    const live = params(1);
    expect(store.offer(live, null, { step: 0, samples: 0, time: 10 })?.version).toBe(1);
    expect(store.offer(live, null, { step: 0, samples: 0, time: 11 })).toBeNull();
    live[0] = 2; // a reset: the same step, other weights
    expect(store.offer(live, null, { step: 0, samples: 0, time: 12 })?.version).toBe(2);
    live[0] = 3;
    expect(store.resolve(2)).toMatchObject({ version: 2 });
    expect(Array.from((store.resolve(2) as { artifact: { model: { params: Float64Array } } }).artifact.model.params)).toEqual([2, 1, 1]);
    expect(store.resolve('latest')).toBe(store.resolve(undefined));
    expect(store.resolve(9)).toMatchObject({ code: 'SG_ERR_UNKNOWN_VERSION' });
    expect(store.resolve('stable')).toMatchObject({ code: 'SG_ERR_UNKNOWN_VERSION' });
    expect(store.resolve('Not A Label')).toMatchObject({ code: 'SG_ERR_SCHEMA' });
  });

  it('promoting the version a label already points to changes nothing: its ack\'s previous is that version, and a rollback goes to the one before it (PROTOCOL.md, promote)', () => {
    const store = new ModelVersions('m', topology, { keep: 8 });
    for (let i = 1; i <= 3; i++) store.offer(params(i), null, { step: i, samples: i, time: i });
    expect(store.promote(1)).toEqual({ label: 'stable', version: 1, previous: null });
    expect(store.promote(3)).toEqual({ label: 'stable', version: 3, previous: 1 });
    // again: stable is 3 already, and stays so; its history is 1, 3, not 1, 3, 3 (a rollback to 3 would do nothing)
    expect(store.promote(3)).toEqual({ label: 'stable', version: 3, previous: 3 });
    expect(store.rollback()).toEqual({ label: 'stable', version: 1, from: 3 });
  });

  it('keeps the last `keep` versions plus labelled ones (and their history, `keep` deep); forgotten versions are reported once', () => {
    const evicted: number[] = [];
    const store = new ModelVersions('m', topology, { keep: 3, spaced: 0, onEvict: (v) => evicted.push(v.version) });
    for (let i = 1; i <= 4; i++) store.offer(params(i), null, { step: i, samples: i, time: i });
    expect(evicted).toEqual([1]);
    expect(store.promote(2)).toEqual({ label: 'stable', version: 2, previous: null });
    expect(store.promote(4, 'canary')).toEqual({ label: 'canary', version: 4, previous: null });
    for (let i = 5; i <= 8; i++) store.offer(params(i), null, { step: i, samples: i, time: i });
    // 2 and 4 are held by labels; 3 and 5 went
    expect(evicted).toEqual([1, 3, 5]);
    expect(store.list().map((v) => [v.version, v.labels])).toEqual([[2, ['stable']], [4, ['canary']], [6, []], [7, []], [8, []]]);
    expect(store.promote(7)).toEqual({ label: 'stable', version: 7, previous: 2 });
    expect(store.rollback()).toEqual({ label: 'stable', version: 2, from: 7 });
    expect(store.rollback()).toMatchObject({ code: 'SG_ERR_STATE' });
    expect(store.promote(1)).toMatchObject({ code: 'SG_ERR_UNKNOWN_VERSION' });
    expect(store.promote(7, 'latest')).toMatchObject({ code: 'SG_ERR_SCHEMA' });
    // a label's history is bounded too: promoting 4 versions with keep 3 lets the oldest go
    store.promote(6);
    store.promote(8);
    store.promote(7);
    expect(store.labelled()).toEqual({ stable: 7, canary: 4 });
    for (let i = 9; i <= 12; i++) store.offer(params(i), null, { step: i, samples: i, time: i });
    expect(store.list().length).toBeLessThanOrEqual(3 + 3 + 1);
    expect(new Set(evicted).size).toBe(evicted.length);
  });

  it('besides the recent versions, older ones 10 s or more apart are kept (as many as keep), so a version read from /models can be tried and promoted minutes later', () => {
    // an outside probe: at 30 versions a second, the last 32 left within a second, and a
    // version read from /models was gone before it could be promoted
    const evicted: number[] = [];
    const store = new ModelVersions('m', topology, { keep: 3, onEvict: (v) => evicted.push(v.version) });
    // a version every 100 ms for 60 s: 600 versions
    for (let i = 1; i <= 600; i++) store.offer(params(i), null, { step: i, samples: i, time: i * 100 });
    const kept = store.list().map((v) => v.version);
    // the last 3, and the newest three of the older ones kept 10 s (100 versions) apart
    expect(kept).toEqual([301, 401, 501, 598, 599, 600]);
    expect(evicted.length).toBe(600 - kept.length);
    expect(new Set(evicted).size).toBe(evicted.length);
    expect(store.promote(401)).toMatchObject({ version: 401 });
    expect(store.resolve(450)).toMatchObject({ code: 'SG_ERR_UNKNOWN_VERSION', message: expect.stringContaining('3 older ones 10 s or more apart, 301 to 501') });
    // spaced versions leave in turn; a labelled one stays
    for (let i = 601; i <= 1000; i++) store.offer(params(i), null, { step: i, samples: i, time: i * 100 });
    expect(store.list().map((v) => v.version)).toEqual([401, 701, 801, 901, 998, 999, 1000]);
  });

  it('saveLabels → JSON → restoreLabels: labels point where they did, with the same meta and weights bit for bit; numbers go on after them; one rollback survives', () => {
    const store = new ModelVersions('m', topology, { keep: 3 });
    const odd = Float64Array.of(0.1 + 0.2, -1e-300, Math.PI);
    store.offer(odd, null, { step: 5, samples: 50, time: 1000.5 });
    store.promote(1);
    for (let i = 2; i <= 6; i++) store.offer(params(i), null, { step: 5 * i, samples: 50 * i, time: 1000 + i });
    store.promote(6); // stable 6, and before it 1 (for a rollback)
    store.promote(5, 'canary');
    const doc = JSON.parse(JSON.stringify(labelsToJSON(store.saveLabels())));
    expect(doc.format).toBe('streamgrad/version-labels@1');
    expect(doc.versions.map((v: { version: number }) => v.version)).toEqual([1, 5, 6]);

    const again = new ModelVersions('m', topology, { keep: 3 });
    again.restoreLabels(labelsFromJSON(doc, topology));
    expect(again.labelled()).toEqual({ stable: 6, canary: 5 });
    expect((again.resolve('stable') as ModelVersion).info()).toEqual({ model: 'm', version: 6, step: 30, samples: 300, time: 1006 });
    expect((again.resolve('latest') as ModelVersion).version).toBe(6);
    // the same weights as the saved latest make no new version; others are 7, not a number given before
    expect(again.offer(params(6), null, { step: 30, samples: 300, time: 1 })).toBeNull();
    expect(again.offer(params(9), null, { step: 31, samples: 310, time: 2 })?.version).toBe(7);
    expect(again.rollback()).toEqual({ label: 'stable', version: 1, from: 6 });
    const first = again.resolve('stable') as ModelVersion;
    expect(first.info()).toEqual({ model: 'm', version: 1, step: 5, samples: 50, time: 1000.5 });
    expect(Array.from(first.artifact.model.params)).toEqual(Array.from(odd));
    expect(() => again.restoreLabels(labelsFromJSON(doc, topology))).toThrow(/before the first version/);
  });

  it('labelsFromJSON refuses a document of another model or a damaged one, naming the field (SG_ERR_CHECKPOINT)', () => {
    const store = new ModelVersions('m', topology);
    store.offer(params(1), null, { step: 1, samples: 1, time: 1 });
    store.promote(1);
    const doc = labelsToJSON(store.saveLabels());
    const wide = { inputSize: 3, layers: [{ units: 1, activation: 'linear' as const }] };
    expect(() => labelsFromJSON(doc, wide)).toThrow(expect.objectContaining({ code: 'SG_ERR_CHECKPOINT', message: expect.stringMatching(/versions\.versions\[0\]\.params: must hold the model's 4 parameters/) }));
    expect(() => labelsFromJSON({ ...doc, format: 'x' }, topology)).toThrow(/versions\.format/);
    expect(() => labelsFromJSON({ ...doc, labels: { 'Bad Label': [1] } }, topology)).toThrow(/is not a label/);
    const nan = JSON.parse(JSON.stringify(doc));
    nan.versions[0].params[1] = null;
    expect(() => labelsFromJSON(nan, topology, 'sections.versions')).toThrow(/sections\.versions\.versions\[0\]\.params\[1\]: must be a finite number/);
  });
});

describe('readLabelsFile', () => {
  it('a labels file that is a link to /dev/zero, a FIFO or a folder is SG_ERR_CHECKPOINT naming it, at once (never read forever or waited on)', async () => {
    // before: serve --model FILE with FILE.labels.json → /dev/zero read until memory ran out, and a FIFO hung the start
    const dir = mkdtempSync(join(tmpdir(), 'sg-labels-file-'));
    try {
      symlinkSync('/dev/zero', join(dir, 'zero.labels.json'));
      execFileSync('mkfifo', [join(dir, 'fifo.labels.json')]);
      mkdirSync(join(dir, 'folder.labels.json'));
      for (const [name, why] of [['fifo', 'not a regular file'], ['folder', 'is a directory'], ['zero', 'not a regular file']]) {
        const path = join(dir, `${name}.labels.json`);
        await expect(readLabelsFile(path, topology)).rejects.toMatchObject({ code: 'SG_ERR_CHECKPOINT', field: path, message: `${path}: cannot read the labels: ${why}` });
      }
      expect(await readLabelsFile(join(dir, 'none.labels.json'), topology)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 5_000);
});
