import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CommandError } from '../../clients/node/errors.ts';
import { PendingRequests, type Request } from '../../clients/node/pending-requests.ts';

/** QoS 1 bookkeeping with a fake transport and fake timers (RELIABILITY.md rows 2, 37). */

class FakeTransport {
  open = true;
  readonly sent: Request[] = [];
  send(request: Request): boolean {
    if (!this.open) return false;
    this.sent.push(request);
    return true;
  }
}

const pause = (id: string): Request => ({ type: 'pause', id, run: 'a' });
const ack = (id: string, duplicate = false) => ({ type: 'ack' as const, id, command: 'pause', duplicate });

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('PendingRequests', () => {
  it('sends at once and resolves with the matching ack; a late duplicate ack matches nothing', async () => {
    const transport = new FakeTransport();
    const pending = new PendingRequests(transport, { timeoutMs: 1000, retries: 3 });
    const answer = pending.add(pause('p1'));
    expect(transport.sent).toEqual([pause('p1')]);
    expect(pending.acknowledge(ack('other'))).toBe(false);
    expect(pending.acknowledge(ack('p1'))).toBe(true);
    await expect(answer).resolves.toEqual(ack('p1'));
    expect(pending.acknowledge(ack('p1', true))).toBe(false);
    expect(pending.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('resends the same id after each timeout and fails with SG_ERR_TIMEOUT after 1 + retries sends', async () => {
    const transport = new FakeTransport();
    const pending = new PendingRequests(transport, { timeoutMs: 1000, retries: 2 });
    const answer = pending.add(pause('p1')).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(999);
    expect(transport.sent).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(transport.sent).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(transport.sent.map((r) => r.id)).toEqual(['p1', 'p1', 'p1']);
    await vi.advanceTimersByTimeAsync(1000);
    const error = await answer;
    expect(error).toBeInstanceOf(CommandError);
    expect(error).toMatchObject({ code: 'SG_ERR_TIMEOUT', command: 'pause', id: 'p1' });
    expect((error as Error).message).toBe('pause (run "a"): no answer after 3 send(s) over 3 s');
    expect(transport.sent).toHaveLength(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an answer after a retry still resolves; the server error of a request rejects it with its code', async () => {
    const transport = new FakeTransport();
    const pending = new PendingRequests(transport, { timeoutMs: 100, retries: 3 });
    const first = pending.add(pause('p1'));
    const second = pending.add({ type: 'setLearningRate', id: 'p2', run: 'a', learningRate: 1 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(150);
    pending.acknowledge(ack('p1', true));
    await expect(first).resolves.toMatchObject({ duplicate: true });
    expect(pending.refuse({ type: 'error', code: 'SG_ERR_FORBIDDEN', message: 'read-only', id: 'p2' })).toMatchObject({ id: 'p2' });
    expect(await second).toMatchObject({ name: 'CommandError', code: 'SG_ERR_FORBIDDEN', message: 'setLearningRate (run "a"): read-only' });
    expect(pending.refuse({ type: 'error', code: 'SG_ERR_SCHEMA', message: 'no id' })).toBeUndefined();
  });

  it('while disconnected nothing is sent and no send is spent; resendAll() sends every waiting request, oldest first', async () => {
    const transport = new FakeTransport();
    transport.open = false;
    const pending = new PendingRequests(transport, { timeoutMs: 100, retries: 1 });
    const a = pending.add(pause('a'));
    const b = pending.add(pause('b'));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(transport.sent).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    transport.open = true;
    pending.resendAll();
    expect(transport.sent.map((r) => r.id)).toEqual(['a', 'b']);
    pending.acknowledge(ack('a'));
    pending.acknowledge(ack('b'));
    await expect(Promise.all([a, b])).resolves.toHaveLength(2);
  });

  it('a timeout while disconnected waits for the next connection; a request whose last send died with its connection fails', async () => {
    const transport = new FakeTransport();
    const pending = new PendingRequests(transport, { timeoutMs: 100, retries: 1 });
    const answer = pending.add(pause('p1')).catch((e: unknown) => e);
    transport.open = false;
    await vi.advanceTimersByTimeAsync(100); // the retry finds no connection
    transport.open = true;
    pending.resendAll(); // second and last send
    expect(transport.sent.map((r) => r.id)).toEqual(['p1', 'p1']);
    pending.resendAll(); // the connection dropped again before the answer
    expect(await answer).toMatchObject({ code: 'SG_ERR_TIMEOUT', message: expect.stringMatching(/lost with its connection/) });
  });

  it('forget() drops a request without settling it; rejectAll() fails the rest with a cause and clears every timer', async () => {
    const transport = new FakeTransport();
    const pending = new PendingRequests(transport, { timeoutMs: 100, retries: 3 });
    let settled = false;
    void pending.add(pause('gone')).finally(() => { settled = true; });
    const kept = pending.add(pause('kept')).catch((e: unknown) => e);
    expect(pending.forget('gone')).toBe(true);
    expect(pending.forget('gone')).toBe(false);
    const cause = new Error('closed');
    pending.rejectAll('SG_ERR_CLOSED', 'the client was closed', cause);
    expect(await kept).toMatchObject({ code: 'SG_ERR_CLOSED', message: 'pause (run "a"): the client was closed', cause });
    await vi.advanceTimersByTimeAsync(1000);
    expect(settled).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses a second request under a waiting id', async () => {
    const pending = new PendingRequests(new FakeTransport(), { timeoutMs: 100, retries: 0 });
    void pending.add(pause('p1')).catch(() => undefined);
    await expect(pending.add(pause('p1'))).rejects.toThrow(/already waiting/);
    pending.rejectAll('SG_ERR_CLOSED', 'done');
  });
});
