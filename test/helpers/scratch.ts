import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/**
 * Fresh scratch folders for a test file's tests: each call makes a new one inside one folder
 * `prefix…` under the system's temporary folder, which is removed after the file's tests, also
 * when one fails. (Before: `mkdtempSync(join(tmpdir(), prefix))` a test, never removed — a
 * few hundred folders a run of the suite left in /tmp.) Call it at the top of a test file:
 * it registers an `afterAll`.
 *
 * @example
 * const tempDir = scratchFolders('sg-ckpt-');
 * it('…', () => { const dir = tempDir(); … });
 */
export function scratchFolders(prefix: string): () => string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  return () => mkdtempSync(join(root, 'test-'));
}
