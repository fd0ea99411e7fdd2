/**
 * Runs `callback` on a later turn of the event loop, after pending I/O, timers and
 * signals, and returns a function that cancels it. Node's `setImmediate` where there is
 * one; in a browser a `MessageChannel` message (a macrotask that, unlike `setTimeout(0)`,
 * is not clamped to 4 ms once nested), so the same stream runs in both.
 *
 * @example
 * const cancel = nextTurn(() => emitChunk());
 * // on unsubscribe:
 * cancel();
 */
export function nextTurn(callback: () => void): () => void {
  const { setImmediate, MessageChannel } = globalThis as unknown as Partial<Runtime>;
  if (setImmediate !== undefined) {
    const handle = setImmediate(callback);
    return () => clearImmediate(handle);
  }
  if (MessageChannel === undefined) {
    const timer = setTimeout(callback, 0);
    return () => clearTimeout(timer);
  }
  const channel = new MessageChannel();
  let cancelled = false;
  channel.port1.onmessage = () => {
    channel.port1.close();
    if (!cancelled) callback();
  };
  channel.port2.postMessage(null);
  return () => {
    cancelled = true;
    channel.port1.close();
  };
}

/** What `nextTurn` may find in the global scope: Node's immediates or the browser's channels. */
interface Runtime {
  setImmediate(callback: () => void): NodeJS.Immediate;
  MessageChannel: new () => { readonly port1: Port; readonly port2: Port };
}

interface Port {
  onmessage: (() => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

/** Resolves on a later turn of the event loop (see `nextTurn`). */
export function afterTurn(): Promise<void> {
  return new Promise((resolve) => nextTurn(resolve));
}
