import type { Duplex } from 'node:stream';

/** What a queued upgrade must carry: its socket, so that one that dies while queued is dropped. */
export interface QueuedUpgrade {
  readonly socket: Duplex;
}

/** Bounds of an `UpgradeQueue`. */
export interface UpgradeQueueOptions {
  /** Most upgrades waiting at once; `push` refuses more. */
  readonly capacity: number;
  /** Longest stretch of completions in one turn of the event loop, in ms (at least one completes per turn). */
  readonly sliceMs: number;
}

/**
 * The WebSocket upgrades a server has accepted but not completed yet, completed in FIFO
 * order in slices of at most `sliceMs` from `setImmediate` (issue 17 item 6).
 *
 * *Why*: Node parses every request that arrived in one poll phase before it returns to the
 * event loop, and completing an upgrade (the 101, the WebSocket, the client's hello) costs
 * a fraction of a millisecond; done inside the `upgrade` event, a burst of 500 connections
 * is a few hundred ms of work that a `GET /healthz` arriving meanwhile waits behind. Queued
 * here, each poll phase only parses, and between two slices the next poll phase answers the
 * cheap requests that arrived. A socket that closes while queued is dropped from the queue
 * (counted in `abandoned`) and never completed.
 *
 * @example
 * const queue = new UpgradeQueue<{ socket: Duplex; req: IncomingMessage; head: Buffer }>(
 *   (u) => wss.handleUpgrade(u.req, u.socket, u.head, (ws) => accept(ws)),
 *   { capacity: 1024, sliceMs: 2 });
 * http.on('upgrade', (req, socket, head) => {
 *   if (!queue.push({ req, socket, head })) rejectUpgrade(socket, 503, 'too many handshakes waiting');
 * });
 */
export class UpgradeQueue<T extends QueuedUpgrade> {
  // a ring would save the shift, but shift on a few hundred entries is cheaper than one completion
  private readonly waiting: { readonly item: T; readonly onClose: () => void; dead: boolean }[] = [];
  private live = 0;
  private scheduled: NodeJS.Immediate | null = null;
  /** Upgrades whose socket closed while they waited (never completed). */
  abandoned = 0;
  /** Upgrades refused because the queue was full. */
  refused = 0;
  /** Upgrades completed. */
  completed = 0;

  constructor(private readonly complete: (item: T) => void, private readonly options: UpgradeQueueOptions) {}

  /** Upgrades waiting (sockets that closed meanwhile not included). */
  get length(): number {
    return this.live;
  }

  /** Queues an upgrade; false (and counted in `refused`) when `capacity` are waiting already. */
  push(item: T): boolean {
    if (this.live >= this.options.capacity) {
      this.refused++;
      return false;
    }
    const entry = {
      item,
      dead: false,
      onClose: () => {
        if (entry.dead) return;
        entry.dead = true;
        this.live--;
        this.abandoned++;
      },
    };
    item.socket.once('close', entry.onClose);
    this.waiting.push(entry);
    this.live++;
    this.schedule();
    return true;
  }

  /** Drops every waiting upgrade without completing it, calling `drop` on each (e.g. to destroy its socket). */
  clear(drop: (item: T) => void): void {
    if (this.scheduled !== null) clearImmediate(this.scheduled);
    this.scheduled = null;
    for (const entry of this.waiting.splice(0)) {
      entry.item.socket.off('close', entry.onClose);
      if (!entry.dead) drop(entry.item);
    }
    this.live = 0;
  }

  private schedule(): void {
    this.scheduled ??= setImmediate(() => this.drain());
  }

  private drain(): void {
    this.scheduled = null;
    const until = performance.now() + this.options.sliceMs;
    let first = true;
    while (this.waiting.length > 0 && (first || performance.now() < until)) {
      const entry = this.waiting.shift()!;
      entry.item.socket.off('close', entry.onClose);
      if (entry.dead) continue;
      entry.dead = true;
      this.live--;
      first = false;
      this.completed++;
      this.complete(entry.item);
    }
    if (this.waiting.length > 0) this.schedule();
  }
}
