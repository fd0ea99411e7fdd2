import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeFolder } from '../pipeline/make-folder.ts';

const work = mkdtempSync(join(tmpdir(), 'sg-make-folder-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('makeFolder', () => {
  it('makes a folder with its missing parents; one already there is fine; a file in the way is EEXIST', async () => {
    const nested = join(work, 'a', 'b', 'c');
    await makeFolder(nested);
    expect(statSync(nested).isDirectory()).toBe(true);
    await makeFolder(nested);
    writeFileSync(join(work, 'file'), 'x');
    await expect(makeFolder(join(work, 'file'))).rejects.toMatchObject({ code: 'EEXIST' });
  });

  it('a folder the system refuses although its parent is there (/proc) is its error at once, not an endless retry', async () => {
    // Node's recursive mkdir alone retried /proc and /proc/x for ever (--checkpoint-dir, serve --state, export tfjs --out)
    await expect(makeFolder('/proc/streamgrad-make-folder-test')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(existsSync('/proc/streamgrad-make-folder-test')).toBe(false);
  }, 5_000);
});
