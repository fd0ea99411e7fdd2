import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ModelVersion, ModelVersions, type VersionNumbers } from '../../server/model-versions.ts';
import { NUMBER_BLOCK, numbersFileOf, readReservation, ReservedNumbers, reserveVersionNumbers } from '../../server/version-numbers.ts';

/**
 * Version numbers reserved on disk ahead of use (an outside probe: after a kill -9 and
 * --resume, a run numbered its versions again from its checkpoint's stale count, and a
 * caller pinned to version 140 got other weights under the same number).
 */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-version-numbers-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const topology = { inputSize: 2, layers: [{ units: 1, activation: 'linear' as const }] };
const until = async (check: () => boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('reserveVersionNumbers', () => {
  it('each start reserves the block after the last one on disk: numbering goes on past everything any earlier process could have given', async () => {
    const path = numbersFileOf(work, 'train');
    expect(path).toBe(join(work, 'train.versions.json'));
    expect(await reserveVersionNumbers(path)).toEqual({ path, first: 1, reserved: NUMBER_BLOCK });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ format: 'streamgrad-version-numbers', reserved: NUMBER_BLOCK });
    expect(await reserveVersionNumbers(path)).toEqual({ path, first: NUMBER_BLOCK + 1, reserved: 2 * NUMBER_BLOCK });
    expect(await readReservation(path)).toBe(2 * NUMBER_BLOCK);
  });

  it('a file that is not a reservation is SG_ERR_CHECKPOINT naming it, not a silent start from 1', async () => {
    for (const [name, text] of [['junk', 'not json'], ['other', '{"format":"x","reserved":5}'], ['negative', '{"format":"streamgrad-version-numbers","reserved":-1}'], ['fraction', '{"format":"streamgrad-version-numbers","reserved":1.5}']]) {
      const path = join(work, `${name}.versions.json`);
      writeFileSync(path, text);
      await expect(reserveVersionNumbers(path)).rejects.toMatchObject({ code: 'SG_ERR_CHECKPOINT', field: path });
      expect(readFileSync(path, 'utf8')).toBe(text); // left as it was
    }
    const folder = join(work, 'folder.versions.json');
    mkdirSync(folder);
    await expect(reserveVersionNumbers(folder)).rejects.toMatchObject({ code: 'SG_ERR_CHECKPOINT', message: expect.stringContaining('is a directory') });
  });
});

describe('ReservedNumbers', () => {
  it('gives numbers up to the reservation, and reserves the next block on disk once half of this one is used', async () => {
    const path = join(work, 'extend.versions.json');
    const numbers = new ReservedNumbers(await reserveVersionNumbers(path, 10), () => undefined, 10);
    expect(numbers.first).toBe(1);
    for (let n = 1; n <= 5; n++) expect(numbers.allows(n)).toBe(true);
    expect(await readReservation(path)).toBe(10); // not yet half used
    expect(numbers.allows(6)).toBe(true); // past half: the next block is being written
    expect(numbers.allows(11)).toBe(false); // not reserved until that write is whole
    await until(() => numbers.last === 20);
    expect(await readReservation(path)).toBe(20);
    expect(numbers.allows(11)).toBe(true);
  });

  it('a reservation that cannot be written holds numbering at the last reserved number, says so once, and is tried again', async () => {
    const dir = join(work, 'gone');
    mkdirSync(dir);
    const path = join(dir, 'run.versions.json');
    const lines: string[] = [];
    const numbers = new ReservedNumbers(await reserveVersionNumbers(path, 4), (line) => lines.push(line), 4);
    rmSync(dir, { recursive: true });
    expect(numbers.allows(3)).toBe(true); // asks for more: the write fails
    await until(() => lines.length === 1);
    expect(lines[0]).toMatch(/cannot reserve more in .*run\.versions\.json .*no version past 4 until a write succeeds/);
    expect(numbers.allows(4)).toBe(true);
    expect(numbers.allows(5)).toBe(false);
    mkdirSync(dir);
    // tried again, at most once a second
    await until(() => numbers.allows(5), 5000);
    expect(lines[1]).toMatch(/reserved up to 8 .* again/);
    expect(await readReservation(path)).toBe(8);
  });
});

describe('ModelVersions with reserved numbers', () => {
  it('numbers from the reservation\'s first number, and offers nothing while a number is not reserved yet (the caller offers again)', () => {
    let upTo = 1002;
    const numbers: VersionNumbers = { first: 1001, allows: (n) => n <= upTo };
    const store = new ModelVersions('m', topology, { numbers });
    const at = (step: number) => ({ step, samples: step, time: step });
    expect(store.offer(Float64Array.of(1, 1, 1), null, at(1))?.version).toBe(1001);
    expect(store.offer(Float64Array.of(2, 1, 1), null, at(2))?.version).toBe(1002);
    expect(store.offer(Float64Array.of(3, 1, 1), null, at(3))).toBeNull();
    expect(store.waitingForNumber).toBe(true);
    expect((store.resolve('latest') as ModelVersion).version).toBe(1002);
    upTo = 2000;
    expect(store.offer(Float64Array.of(3, 1, 1), null, at(3))?.version).toBe(1003);
    expect(store.waitingForNumber).toBe(false);
    // nothing changed: no version, and nothing to wait for
    expect(store.offer(Float64Array.of(3, 1, 1), null, at(3))).toBeNull();
    expect(store.waitingForNumber).toBe(false);
  });

  it('labels restored from a checkpoint keep their numbers; new versions go on past the reservation, not from the checkpoint\'s count', () => {
    const saved = new ModelVersions('m', topology);
    for (let v = 1; v <= 3; v++) saved.offer(Float64Array.of(v, 0, 0), null, { step: v, samples: v, time: v });
    saved.promote(2);
    const store = new ModelVersions('m', topology, { numbers: { first: 1001, allows: () => true } });
    store.restoreLabels(saved.saveLabels());
    expect(store.resolve('stable')).toMatchObject({ version: 2 });
    expect(store.offer(Float64Array.of(9, 0, 0), null, { step: 9, samples: 9, time: 9 })?.version).toBe(1001);
  });
});
