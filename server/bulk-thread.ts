import type { Worker } from 'node:worker_threads';
import { answerBlock } from './bulk-lines.ts';
import { LruMap } from './limits.ts';
import { DEFAULT_BULK_NICE } from './options.ts';
import { type ModelData, modelData, type ModelVersion, type VersionInfo } from './model-versions.ts';
import type { PredictionFailure } from './protocol.ts';
import { startModuleThread } from './server-thread-start.ts';

/** A block of NDJSON lines answered: the answer's bytes, how many were predicted, the failures. */
export interface AnsweredBlock {
  readonly bytes: Uint8Array;
  readonly predicted: number;
  readonly failures: readonly PredictionFailure[];
}

/**
 * Who answers the blocks of a bulk request: on the calling thread (`inlineBulk`: the
 * answer at once, and the caller lets the event loop turn between blocks), or on a thread
 * of its own (`BulkThread`: a promise).
 */
export interface BulkAnswerer {
  answer(version: ModelVersion, block: Uint8Array, firstLine: number, unknown: 'reject' | 'ignore', maxLineBytes: number): AnsweredBlock | Promise<AnsweredBlock>;
}

/** A block answered on the calling thread: `answerBlock`, encoded. */
function answerHere(version: ModelVersion, block: Uint8Array, firstLine: number, unknown: 'reject' | 'ignore', maxLineBytes: number): AnsweredBlock {
  const a = answerBlock(version, block, firstLine, unknown, maxLineBytes);
  return { bytes: Buffer.from(a.text, 'utf8'), predicted: a.predicted, failures: a.failures };
}

/** Answers each block on the calling thread. */
export const inlineBulk: BulkAnswerer = { answer: answerHere };

/** A version as the bulk thread gets it: its meta and its model as plain data (cloned into the thread). */
export interface VersionData extends ModelData {
  readonly info: VersionInfo;
}

/** Messages to the bulk thread. */
export type ToBulkThread =
  | { readonly type: 'version'; readonly id: number; readonly version: VersionData }
  | { readonly type: 'block'; readonly seq: number; readonly id: number; readonly block: Uint8Array; readonly firstLine: number; readonly unknown: 'reject' | 'ignore'; readonly maxLineBytes: number };

/** Messages from the bulk thread. */
export type FromBulkThread =
  | { readonly type: 'ready'; readonly nice: number | null }
  | { readonly type: 'answer'; readonly seq: number; readonly bytes: Uint8Array; readonly predicted: number; readonly failures: PredictionFailure[] }
  | { readonly type: 'failed'; readonly seq: number; readonly message: string };

/** Versions the bulk thread keeps (this side keeps the same list in the same order, so it knows which to send). */
export const BULK_THREAD_VERSIONS = 8;

/** A block sent and not yet answered: what answers it if the thread cannot. */
interface Pending {
  readonly resolve: (a: AnsweredBlock) => void;
  readonly reject: (error: Error) => void;
  readonly version: ModelVersion;
  readonly block: Uint8Array;
  readonly firstLine: number;
  readonly unknown: 'reject' | 'ignore';
  readonly maxLineBytes: number;
}

/** A number per version object, for the thread's cache (a model removed and added again restarts its version numbers). */
const versionIds = new WeakMap<ModelVersion, number>();
let nextVersionId = 1;
const idOf = (version: ModelVersion) => {
  let id = versionIds.get(version);
  if (id === undefined) versionIds.set(version, id = nextVersionId++);
  return id;
};

/**
 * Answers bulk prediction blocks on a thread of its own, at `nice` (`ServeOptions.bulkThread`,
 * off by default): the server thread then only reads bodies and writes answers. Built for
 * issue 12 on the guess that bulk work on the server thread took a core from training;
 * measured on a 2-core machine it did not (training kept no more of the cores, and bulk
 * throughput halved: docs/serving.md, session 9), so it is an option for a machine where a
 * measurement shows it pays.
 *
 * The thread starts at the first block and is not waited for: until it has said it is
 * ready, blocks are answered on the calling thread (`inlineBulk`), so the first bulk
 * request does not wait for a thread to load. Blocks are answered in the order they are
 * sent. If the thread fails, the blocks it had are answered on the calling thread and it
 * is not used again (nothing is lost; `failure` says why).
 *
 * @example
 * const bulk = new BulkThread();
 * const answered = await bulk.answer(version, Buffer.from('[1,2]\n[3,4]'), 1, 'reject', 1 << 20);
 * await bulk.close();
 */
export class BulkThread implements BulkAnswerer {
  private worker: Worker | null = null;
  private ready = false;
  private dead = false;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly sent = new LruMap<number, true>(BULK_THREAD_VERSIONS);
  /** Why the thread failed, once it has. */
  failure: Error | null = null;
  /** The thread's nice value as it reported it once ready (null where it cannot tell). */
  threadNice: number | null = null;
  /** Blocks answered on the bulk thread, and on the calling thread (while it started, or after it failed). */
  readonly answered = { thread: 0, here: 0 };

  /** `nice`: the thread's nice value (default 19); null leaves it at the server thread's. */
  constructor(private readonly nice: number | null = DEFAULT_BULK_NICE) {}

  /** Whether blocks go to the thread now (it said it is ready and has not failed). */
  get threaded(): boolean {
    return this.ready && !this.dead;
  }

  answer(version: ModelVersion, block: Uint8Array, firstLine: number, unknown: 'reject' | 'ignore', maxLineBytes: number): AnsweredBlock | Promise<AnsweredBlock> {
    if (!this.threaded) {
      this.start();
      this.answered.here++;
      return answerHere(version, block, firstLine, unknown, maxLineBytes);
    }
    const worker = this.worker!;
    const id = idOf(version);
    if (this.sent.get(id) === undefined) {
      const data: VersionData = { info: version.info(), ...modelData(version.artifact) };
      worker.postMessage({ type: 'version', id, version: data } satisfies ToBulkThread);
      this.sent.set(id, true);
    }
    const seq = this.seq++;
    // a copy of exactly the block, moved to the thread (a view would clone the whole body piece under it,
    // and moving a Buffer's own memory would take it from under the Buffers that share its pool)
    const copy = new Uint8Array(block);
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, version, block, firstLine, unknown, maxLineBytes });
      worker.postMessage({ type: 'block', seq, id, block: copy, firstLine, unknown, maxLineBytes } satisfies ToBulkThread, [copy.buffer]);
    });
  }

  /** Ends the thread; blocks it still had are answered here. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.fail(null);
    if (worker !== null) await worker.terminate();
  }

  private start(): void {
    if (this.worker !== null || this.dead) return;
    const worker = startModuleThread('bulk-worker', { workerData: { nice: this.nice } });
    this.worker = worker;
    // an idle bulk thread does not keep the process alive
    worker.unref();
    worker.on('message', (m: FromBulkThread) => {
      if (m.type === 'ready') {
        this.ready = true;
        this.threadNice = m.nice;
        return;
      }
      const p = this.pending.get(m.seq);
      if (p === undefined) return;
      this.pending.delete(m.seq);
      if (m.type === 'answer') {
        this.answered.thread++;
        p.resolve({ bytes: Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength), predicted: m.predicted, failures: m.failures });
      }
      // the step itself threw (it should not): the request fails as it would have on this thread
      else p.reject(new Error(`the bulk thread could not answer a block: ${m.message}`));
    });
    worker.once('error', (error) => this.fail(error));
    worker.once('exit', (code) => this.fail(new Error(`the bulk thread exited (${code})`)));
  }

  /** Stops using the thread; what it had is answered on this thread. */
  private fail(error: Error | null): void {
    if (this.dead) return;
    this.dead = true;
    this.ready = false;
    if (error !== null) this.failure = error;
    this.worker = null;
    for (const p of this.pending.values()) {
      try {
        this.answered.here++;
        p.resolve(answerHere(p.version, p.block, p.firstLine, p.unknown, p.maxLineBytes));
      } catch (e) {
        p.reject(e as Error);
      }
    }
    this.pending.clear();
  }
}
