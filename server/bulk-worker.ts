/**
 * The bulk thread's entry (server/bulk-thread.ts): it takes versions and blocks of NDJSON
 * lines from the server thread and answers each block with `answerBlock`, in order. It
 * lowers its own priority first (`workerData.nice`; on Linux a thread's nice value is its
 * own), so that bulk answers use what the cores have left.
 */
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { answerBlock } from './bulk-lines.ts';
import type { FromBulkThread, ToBulkThread } from './bulk-thread.ts';
import { BULK_THREAD_VERSIONS } from './bulk-thread.ts';
import { LruMap } from './limits.ts';
import { artifactFrom, ModelVersion } from './model-versions.ts';

const port = parentPort!;
const nice = (workerData as { nice: number | null } | undefined)?.nice ?? null;
if (nice !== null) {
  try {
    setPriority(nice);
  } catch {
    // not allowed here (a nice value below the current one needs a privilege): the thread runs at the server thread's
  }
}

const versions = new LruMap<number, ModelVersion>(BULK_THREAD_VERSIONS);
const encoder = new TextEncoder();
const send = (m: FromBulkThread, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

port.on('message', (m: ToBulkThread) => {
  if (m.type === 'version') {
    versions.set(m.id, new ModelVersion(m.version.info, artifactFrom(m.version)));
    return;
  }
  try {
    const version = versions.get(m.id);
    if (version === undefined) throw new Error(`version ${m.id} was not sent`);
    const a = answerBlock(version, m.block, m.firstLine, m.unknown, m.maxLineBytes);
    const bytes = encoder.encode(a.text);
    send({ type: 'answer', seq: m.seq, bytes, predicted: a.predicted, failures: a.failures }, [bytes.buffer as ArrayBuffer]);
  } catch (error) {
    send({ type: 'failed', seq: m.seq, message: error instanceof Error ? error.message : String(error) });
  }
});
let niceNow: number | null = null;
try {
  niceNow = getPriority();
} catch {
  // not on this platform
}
send({ type: 'ready', nice: niceNow });
