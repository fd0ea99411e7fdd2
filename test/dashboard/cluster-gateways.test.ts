// The dashboard of a cluster run in a real headless Chromium: the page of one gateway
// lists the cluster's gateways (its hello carries them), and when its gateway dies the
// page loads itself from another one and shows every partition again. A real nats-server,
// a real worker, two real gateways.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { startGateway } from '../../cluster/gateway.ts';
import { openCluster } from '../../cluster/open.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { DEFAULT_STATIC_DIR } from '../../server/options.ts';
import { natsForThisFile, readings, testModel } from '../cluster/fixture.ts';
import { browserForThisFile } from './browser.ts';
import { screenshot } from './helpers.ts';

let nc: NatsConnection;

beforeAll(() => {
  if (!existsSync(join(DEFAULT_STATIC_DIR, 'app.js'))) throw new Error('the dashboard is not built: run npm run build:dashboard');
});
natsForThisFile((connection) => { nc = connection; });
const browser = browserForThisFile();

describe('a cluster run\'s dashboard in Chromium', () => {
  it('lists the gateways; when its gateway dies it moves to another and shows every partition again', async () => {
    const cluster = await openCluster(nc, { name: 'dash', partitions: 3, leaseTtlMs: 1000 });
    const worker = new ClusterWorker({ cluster, id: 'dash-w', model: testModel, checkpointEveryMs: 200, telemetryHz: 10 });
    void worker.start();
    const first = await startGateway({ cluster, id: 'gw-1', port: 0 });
    const second = await startGateway({ cluster, id: 'gw-2', port: 0 });
    let firstClosed = false;
    try {
      const publisher = new ClusterPublisher(cluster, { batchSize: 20, producer: 'dash' });
      for (const r of readings(600, 9, 5)) await publisher.add(r.key, r.line);
      await publisher.flush();
      // the second gateway has told the first about itself (each lists every gateway)
      for (const started = Date.now(); ; await new Promise((r) => setTimeout(r, 100))) {
        const body = await (await fetch(`${first.url.replace(/\/$/, '')}/gateways`)).json() as { gateways: { id: string }[] };
        if (body.gateways.map((g) => g.id).join() === 'gw-1,gw-2') break;
        if (Date.now() - started > 15_000) throw new Error(`the first gateway lists ${JSON.stringify(body)}`);
      }
      const page = await browser.newPage();
      await page.goto(`${first.url.replace(/\/$/, '')}/`);
      await page.waitForSelector('body[data-connection="open"]');
      for (const p of ['p0', 'p1', 'p2']) await page.waitForSelector(`.run-name[data-run="${p}"]`);
      await page.waitForSelector('#gateways[data-count="2"]');
      expect(await page.locator('#gateways').textContent()).toBe(`gateway ${new URL(first.url).host} of 2`);
      await screenshot(page, 'cluster-gateways-before');

      // its gateway dies: after two failed reconnects the page moves to the other one and
      // shows every partition from there
      await first.close();
      firstClosed = true;
      const secondBase = second.url.replace(/\/$/, '');
      await page.waitForURL((url) => url.href.startsWith(secondBase), { timeout: 30_000 });
      await page.waitForSelector('body[data-connection="open"]', { timeout: 20_000 });
      for (const p of ['p0', 'p1', 'p2']) await page.waitForSelector(`.run-name[data-run="${p}"]`);
      // the list is the one its new gateway's hello gave (the first may still be in it, or not)
      expect(await page.locator('#gateways').textContent()).toMatch(new RegExp(`^gateway ${new URL(second.url).host.replace(/\./g, '\\.')} of [12]$`));
      expect(await page.locator('.connection-text').textContent()).toBe('live');
      await screenshot(page, 'cluster-gateways-after');
      await page.close();
    } finally {
      if (!firstClosed) await first.close();
      await second.close();
      await worker.stop();
    }
  }, 90_000);
});
