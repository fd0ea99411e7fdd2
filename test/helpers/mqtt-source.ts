import { connectAsync } from 'mqtt';
import type { IngestRecord } from '../../core/record.ts';
import type { MqttSource } from '../../sources/mqtt.ts';

/** A reader of what `source` queues: each call gives the records queued within `ms` (a read still waiting then carries over to the next call). */
export function collector(source: MqttSource): (ms: number) => Promise<IngestRecord[]> {
  const iterator = source.queue[Symbol.asyncIterator]();
  let waiting: Promise<IteratorResult<IngestRecord>> | null = null;
  return async (ms) => {
    const out: IngestRecord[] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return out;
      waiting ??= iterator.next();
      const next = await Promise.race([waiting, new Promise<null>((r) => setTimeout(() => r(null), left))]);
      if (next === null) return out;
      waiting = null;
      if (next.done === true) return out;
      out.push(next.value);
    }
  };
}

/**
 * Makes the broker forget the session of `clientId` while it keeps running (and keeps its retained
 * messages): a clean connection under the same client id takes the session over and ends it.
 */
export async function loseSession(url: string, clientId: string): Promise<void> {
  const usurper = await connectAsync(url, { clientId, clean: true, protocolVersion: 5 });
  await usurper.endAsync();
}

/** Waits until `done()`, 20 s at the most. */
export async function until(done: () => boolean): Promise<void> {
  for (const started = Date.now(); !done() && Date.now() - started < 20_000;) await new Promise((r) => setTimeout(r, 20));
}
