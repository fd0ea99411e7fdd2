// `streamgrad cluster publish|worker|status` on a real nats-server: a config's NDJSON
// source bridged into the cluster by its key field, trained by a worker process, shown by
// status; bad records dead-lettered with the local codes; config mistakes are exit 2.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCommit } from '../../cluster/commits.ts';
import { connectNats, openCluster } from '../../cluster/open.ts';
import { BIN, killWhenTestEnds, runCli } from '../helpers/cli.ts';
import { natsServerForThisFile } from '../helpers/nats-server.ts';

const server = natsServerForThisFile();
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-cluster-cli-'));
});

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function config(name: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({
    source: { ndjson: 'data.ndjson', features: ['a', 'b'], targets: ['y'] },
    models: [{ layers: [{ units: 4, activation: 'tanh' }, { units: 1, activation: 'linear' }], loss: 'mse', optimizer: { type: 'adam', lr: 0.01 }, batch: 1 }],
    cluster: { name, partitions: 2, nats: server.servers, key: 'sensor', checkpointEverySeconds: 0.2, ...extra },
  }));
  return file;
}

// Once, under the default backend: this tests the transport and the command line, which do not
// depend on the kernels; the bitwise tests (cluster.test.ts, failover.test.ts) run under both.
describe.skipIf(process.env.STREAMGRAD_BACKEND === 'js')('streamgrad cluster', () => {
  it('publish bridges a file into the partitions, a worker trains them all, status shows every record committed', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 300; i++) {
      if (i % 50 === 7) lines.push(i % 100 === 7 ? '{"sensor":"s1","a":1,' : `{"sensor":"s${i % 5}","a":"x","b":1,"y":2}`);
      else lines.push(JSON.stringify({ sensor: `s${i % 5}`, a: Math.sin(i), b: Math.cos(i), y: Math.sin(i) * Math.cos(i) }));
    }
    writeFileSync(join(dir, 'data.ndjson'), `${lines.join('\n')}\n`);
    const file = config('cli');
    const published = await runCli(dir, ['cluster', 'publish', file, '--id', 'file1']);
    expect(published.stderr).toBe('');
    expect(published.code).toBe(0);
    expect(published.stdout).toMatch(/^published 300 records in \d+ batches to SG_cli \(2 partitions\)/);

    const worker = spawn(process.execPath, [BIN, 'cluster', 'worker', file, '--id', 'cli-w'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    killWhenTestEnds(worker);
    let out = '';
    worker.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    try {
      // polled through the library (a command line per poll is slow on a loaded machine), then status once
      const nc = await connectNats(server.servers);
      const cluster = await openCluster(nc, { name: 'cli' });
      for (const started = Date.now(); ;) {
        const commits = await Promise.all([0, 1].map((p) => readCommit(cluster, p)));
        if (commits.reduce((s, c) => s + (c?.record.records ?? 0), 0) === 300) break;
        if (Date.now() - started > 40_000) throw new Error(`not all committed:\n${out}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      await nc.close();
      const status = await runCli(dir, ['cluster', 'status', file, '--json']);
      expect(status.code).toBe(0);
      const doc = JSON.parse(status.stdout) as { workers: number; rows: { records: number; owner: string | null; steps: number }[] };
      expect(doc.workers).toBe(1);
      expect(doc.rows.map((r) => r.owner)).toEqual(['cli-w', 'cli-w']);
      expect(doc.rows.reduce((s, r) => s + r.records, 0)).toBe(300);
      expect(doc.rows.reduce((s, r) => s + r.steps, 0)).toBe(300 - 6); // 6 bad records (3 not JSON, 3 with a text feature) rejected, the rest trained one by one
      // a gateway serves the partitions from NATS: its runs are the partitions
      const gateway = spawn(process.execPath, [BIN, 'cluster', 'gateway', file, '--port', '0', '--token', 'gateway-token-0123456789abcdef'], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
      killWhenTestEnds(gateway);
      const gatewayExit = new Promise<number | null>((resolve) => gateway.once('exit', (code) => resolve(code)));
      let said = '';
      gateway.stdout.setEncoding('utf8').on('data', (d: string) => (said += d));
      for (const started = Date.now(); !/http:\/\/\S+/.test(said); await new Promise((r) => setTimeout(r, 100))) {
        if (Date.now() - started > 30_000) throw new Error(`gateway did not start: ${said}`);
      }
      expect(said).toMatch(/^gateway of cluster run cli: http:\/\/127\.0\.0\.1:\d+\/? \(commands need the token\)/);
      const base = /http:\/\/\S+/.exec(said)![0].replace(/\/$/, '');
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      for (const started = Date.now(); ; await new Promise((r) => setTimeout(r, 100))) {
        const metrics = await (await fetch(`${base}/metrics`)).text();
        if (/run="p0"/.test(metrics) && /run="p1"/.test(metrics)) break;
        if (Date.now() - started > 20_000) throw new Error(`the gateway does not serve both partitions:\n${metrics.slice(0, 2000)}`);
      }
      gateway.kill('SIGTERM');
      expect(await gatewayExit).toBe(0);
    } finally {
      worker.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const events = out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; partition?: number });
    expect(events[0]!.type).toBe('joined');
    expect(events.filter((e) => e.type === 'acquired').map((e) => e.partition).sort()).toEqual([0, 1]);
    expect(events.filter((e) => e.type === 'released').map((e) => e.partition).sort()).toEqual([0, 1]);
    expect(events.at(-1)!.type).toBe('left');
  }, 90_000);

  it('config mistakes are exit 2 naming the field; no cluster section, other partitions than the run has', async () => {
    const noCluster = join(dir, 'plain.json');
    writeFileSync(noCluster, JSON.stringify({ source: { simulated: 'xor', seed: 1 }, models: [{ layers: [{ units: 1, activation: 'sigmoid' }], loss: 'bce' }] }));
    const missing = await runCli(dir, ['cluster', 'worker', noCluster]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cluster: .*has no "cluster" section/);
    const typo = await runCli(dir, ['cluster', 'status', config('typo', { partitons: 3 })]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/cluster\.partitons/);
    const nc = await connectNats(server.servers);
    await openCluster(nc, { name: 'fixed', partitions: 2 });
    await nc.close();
    const other = await runCli(dir, ['cluster', 'status', config('fixed', { partitions: 3 })]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/cluster\.partitions: cluster run fixed was created with 2, not 3/);
  }, 60_000);
});
