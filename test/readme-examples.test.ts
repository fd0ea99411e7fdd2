import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN } from './helpers/cli.ts';

/**
 * The README's command-line examples run as written (issue #16): every `streamgrad` command
 * in the `sh` blocks of README.md and of the pages of docs/ it lists, in that order, in a fresh folder holding a copy of
 * `examples/` (the data they name is shipped there or made by `streamgrad sample`). The
 * few that cannot end by themselves here are listed with the test that runs them instead.
 */
const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'streamgrad-readme-'));
cpSync(join(root, 'examples'), join(work, 'examples'), { recursive: true });
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** README.md, then the docs/ pages in the order its documentation table lists them. */
function pages(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const docs = [...new Set([...readme.matchAll(/\]\((docs\/[\w-]+\.md)\)/g)].map((m) => m[1]))];
  return [readme, ...docs.map((page) => readFileSync(join(root, page), 'utf8'))];
}

/** Commands of the pages' `sh` blocks: continuation lines joined, comments dropped. */
function readmeCommands(): string[] {
  const out: string[] = [];
  for (const block of pages().join('\n').matchAll(/```sh\n([\s\S]*?)```/g)) {
    let pending = '';
    for (const raw of block[1].split('\n')) {
      const line = raw.replace(/\s+#.*$/, '').replace(/^#.*$/, '');
      if (line.trim() === '') continue;
      pending += pending === '' ? line.trim() : ` ${line.trim()}`;
      if (pending.endsWith('\\')) {
        pending = pending.slice(0, -1).trimEnd();
        continue;
      }
      out.push(pending);
      pending = '';
    }
  }
  return out;
}

/** Commands that are not streamgrad's, or do not end by themselves, and where they are tested instead. */
const ELSEWHERE: readonly (readonly [RegExp, string])[] = [
  [/^npm /, 'npm itself (the package test runs npx streamgrad from a packed install)'],
  [/--mqtt /, 'needs a broker: test/ingest/cli-ingest.test.ts trains on a real Mosquitto'],
  [/--serve|--port /, 'serves until Ctrl-C: test/server/cli-serve.test.ts, test/cli-conventions.test.ts (run --serve)'],
  [/streamgrad start$/, 'runs until Ctrl-C: test/cli-start.test.ts'],
  [/streamgrad watch/, 'needs a server: test/client/watch.test.ts'],
  [/streamgrad serve /, 'serves until Ctrl-C: test/server/cli-predict.test.ts'],
  [/streamgrad cluster /, 'needs nats-server: test/cluster/cli-cluster.test.ts'],
  [/--labels /, 'features and labels files of a deployment: test/labels/cli-labels.test.ts trains with --labels files and stdin'],
];

const commands = readmeCommands().filter((c) => /(^|\|\s*)(npx )?streamgrad /.test(c));
const runnable = commands.filter((c) => !ELSEWHERE.some(([pattern]) => pattern.test(c)));

function sh(command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const line = command.replace(/(^|\|\s*)(npx )?streamgrad /g, `$1"${process.execPath}" "${BIN}" `);
  return new Promise((done, fail) => {
    const { PORT: _port, ...env } = process.env;
    const child = spawn('bash', ['-o', 'pipefail', '-c', line], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout = (stdout + d).slice(-4000); });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr = (stderr + d).slice(-4000); });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('the README\'s command-line examples', () => {
  it('are found: samples made by streamgrad sample, train, predict, inspect, run, start', () => {
    expect(runnable.length, runnable.join('\n')).toBeGreaterThanOrEqual(15);
    for (const verb of ['sample', 'train', 'predict', 'inspect', 'run', 'start']) {
      expect(runnable.some((c) => c.includes(`streamgrad ${verb} `)), verb).toBe(true);
    }
  });

  it('run as written, in order, each with exit 0', async () => {
    for (const command of runnable) {
      const run = await sh(command);
      expect(run.code, `${command}\n${run.stderr}`).toBe(0);
    }
  }, 900_000);
});
