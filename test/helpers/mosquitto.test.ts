// The broker a test file shares (mosquittoForThisFile): up for the tests of the block that
// asks for it, and its process gone once they are over.
import { connectAsync } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { alive, listening } from './local-server.ts';
import { findMosquitto, mosquittoForThisFile, sharedBroker } from './mosquitto.ts';

const binary = findMosquitto({ requiredInCi: true });

describe.skipIf(binary === null)('mosquittoForThisFile', () => {
  let pid: number | undefined;
  let pidAfterRestart: number | undefined;

  describe('a block that asks for a broker', () => {
    const broker = mosquittoForThisFile();

    it('has one running on a free loopback port, which takes connections', async () => {
      expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
      pid = broker.pid;
      expect(pid).toBeTypeOf('number');
      expect(alive(pid!)).toBe(true);
      const client = await connectAsync(broker.url);
      await client.endAsync();
    });

    it('is the same broker in every test of the block, and halts and starts again on its port', async () => {
      expect(broker.pid).toBe(pid);
      await broker.halt();
      expect(broker.pid).toBeUndefined();
      await broker.start();
      pidAfterRestart = broker.pid;
      const client = await connectAsync(broker.url);
      await client.endAsync();
    });
  });

  it('is stopped after the block, its process gone', () => {
    expect(pid).toBeTypeOf('number');
    expect(alive(pid!)).toBe(false);
    expect(alive(pidAfterRestart!)).toBe(false);
  });

  it('a start cut short (a beforeAll past its timeout, the broker still coming up) is stopped all the same once it is up', async () => {
    const shared = sharedBroker();
    const starting = shared.start(); // the hook gave up on it: afterAll runs at once
    await shared.stop();
    await starting;
    try {
      expect(shared.broker.pid).toBeUndefined(); // its process exited
      expect(await listening(shared.broker.port)).toBe(false);
    } finally {
      await shared.broker.stop(); // left running only if the test fails
    }
  });
});
