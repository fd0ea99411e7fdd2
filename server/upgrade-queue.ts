import type { Duplex } from 'node:stream';

/** What a queued upgrade must carry: its socket (watched while it waits) and the bytes read after its request. */
export interface QueuedUpgrade {
  readonly socket: Duplex;
  readonly head: Buffer;
}

/** Most bytes a waiting socket may send before its 101 (a client's first frames fit): over it, it is destroyed. */
export const MAX_EARLY_BYTES = 64 * 1024;

/** Bounds of an `UpgradeQueue`. */
export interface UpgradeQueueOptions {
  /** Most upgrades waiting at once; `push` refuses more. */
  readonly capacity: number;
  /** Longest stretch of completions in one turn of the event loop, in ms (at least one completes per turn). */
  readonly sliceMs: number;
  /**
   * Longest the completions hold back at once while connections are still being accepted,
   * in ms (see `accepted`); 0 never holds them back.
   */
  readonly maxHoldMs?: number;
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
 * cheap requests that arrived. A waiting socket is read (Node leaves an upgraded socket
 * paused, and a paused socket never notices its peer's reset): what arrives is kept and
 * handed to `complete` after the request's own `head` (at most `MAX_EARLY_BYTES`), and a
 * socket that sends more, ends, fails or closes while queued is destroyed, dropped from the
 * queue (counted in `abandoned`) and never completed.
 *
 * *Accepting comes first*: libuv (1.45 on, so Node 20) accepts one connection per turn of
 * the event loop, so a burst's connections wait in the kernel's FIFO accept queue, and a
 * `/healthz` that connects behind them is not even accepted before one turn per connection
 * ahead of it has run. A turn that also completes an upgrade (a fifth of a ms) is three
 * times as long as one that accepts and parses, so while the server is told of accepted
 * connections (`accepted`, from the server's `connection` event) the queue completes none:
 * the accept queue drains at the cheaper pace, the requests in it are read and the plain
 * ones answered, and the completions follow in the same order. It holds `maxHoldMs` at
 * most, then runs a slice, so a server that accepts a connection every turn for ever still
 * completes handshakes, a slice every `maxHoldMs`. The handshakes of a burst as a whole take
 * no longer: the same work is done, in another order.
 *
 * @example
 * const queue = new UpgradeQueue<{ socket: Duplex; req: IncomingMessage; head: Buffer }>(
 *   (u, head) => wss.handleUpgrade(u.req, u.socket, head, (ws) => accept(ws)),
 *   { capacity: 1024, sliceMs: 2, maxHoldMs: 50 });
 * http.on('connection', () => queue.accepted());
 * http.on('upgrade', (req, socket, head) => {
 *   if (!queue.push({ req, socket, head })) rejectUpgrade(socket, 503, 'too many handshakes waiting');
 * });
 */
export class UpgradeQueue<T extends QueuedUpgrade> {
  // a ring would save the shift, but shift on a few hundred entries is cheaper than one completion
  private readonly waiting: Waiting<T>[] = [];
  private live = 0;
  private scheduled: NodeJS.Immediate | null = null;
  /** A connection was accepted since the last turn's drain: more may be waiting in the kernel's queue. */
  private accepting = false;
  /** When the completions began to hold back for accepts (performance.now()), or -1. */
  private holdingSince = -1;
  /** Upgrades whose socket closed while they waited (never completed). */
  abandoned = 0;
  /** Upgrades refused because the queue was full. */
  refused = 0;
  /** Upgrades completed. */
  completed = 0;
  /** Turns of the event loop in which completions held back for accepted connections. */
  held = 0;

  /** `complete(item, head)`: `head` is the item's head and whatever its socket sent while it waited. */
  constructor(private readonly complete: (item: T, head: Buffer) => void, private readonly options: UpgradeQueueOptions) {}

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
    const socket = item.socket;
    const entry: Waiting<T> = {
      item,
      dead: false,
      more: [],
      bytes: 0,
      onData: (data: Buffer) => {
        entry.more.push(data);
        entry.bytes += data.length;
        // a client sends nothing before the 101 but its first frames: more is not a client, and would cost memory
        if (entry.bytes > MAX_EARLY_BYTES) socket.destroy();
      },
      onEnd: () => socket.destroy(),
      onClose: () => {
        if (entry.dead) return;
        entry.dead = true;
        this.live--;
        this.abandoned++;
      },
    };
    socket.on('data', entry.onData);
    socket.once('end', entry.onEnd);
    socket.once('error', entry.onEnd);
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
      unwatch(entry);
      if (!entry.dead) drop(entry.item);
    }
    this.live = 0;
    this.holdingSince = -1;
  }

  private schedule(): void {
    this.scheduled ??= setImmediate(() => this.drain());
  }

  /**
   * Tells the queue that the server accepted a connection: until a turn of the event loop
   * accepts none, completions wait, a slice every `maxHoldMs` at most (see the class's comment).
   */
  accepted(): void {
    this.accepting = true;
  }

  private drain(): void {
    this.scheduled = null;
    if (this.holdForAccepts()) {
      this.held++;
      return this.schedule();
    }
    const until = performance.now() + this.options.sliceMs;
    let first = true;
    while (this.waiting.length > 0 && (first || performance.now() < until)) {
      const entry = this.waiting.shift()!;
      unwatch(entry);
      if (entry.dead) continue;
      entry.dead = true;
      this.live--;
      first = false;
      this.completed++;
      // the socket stays flowing: the listener `complete` adds (ws's) takes the data from here on
      this.complete(entry.item, entry.more.length === 0 ? entry.item.head : Buffer.concat([entry.item.head, ...entry.more]));
    }
    if (this.waiting.length > 0) this.schedule();
  }

  /**
   * Whether this turn's completions wait for accepts: a connection came in since the last
   * turn, and the queue has not held for `maxHoldMs` since its last slice.
   */
  private holdForAccepts(): boolean {
    const accepting = this.accepting;
    this.accepting = false;
    const bound = this.options.maxHoldMs ?? 0;
    if (!accepting || bound <= 0) {
      this.holdingSince = -1;
      return false;
    }
    const now = performance.now();
    if (this.holdingSince < 0) this.holdingSince = now;
    if (now - this.holdingSince < bound) return true;
    // a slice now, then hold again: while accepts never stop (a flood of connections),
    // handshakes still complete, a slice every maxHoldMs, and a /healthz behind a burst
    // larger than maxHoldMs of accepts waits a few slices, not the burst's completions
    this.holdingSince = -1;
    return false;
  }
}

interface Waiting<T extends QueuedUpgrade> {
  readonly item: T;
  dead: boolean;
  /** Bytes the socket sent while it waited, and how many. */
  readonly more: Buffer[];
  bytes: number;
  readonly onData: (data: Buffer) => void;
  readonly onEnd: () => void;
  readonly onClose: () => void;
}

function unwatch<T extends QueuedUpgrade>(entry: Waiting<T>): void {
  const socket = entry.item.socket;
  socket.off('data', entry.onData);
  socket.off('end', entry.onEnd);
  socket.off('error', entry.onEnd);
  socket.off('close', entry.onClose);
}
