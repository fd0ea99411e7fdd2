// The memory behind "applied at most once per id", shared by a server's CommandLog and a
// cluster partition's owner: one application per key, the same outcome again marked
// duplicate, a resend during the first waits for it, refusals forgotten, bounded.
import { describe, expect, it } from 'vitest';
import { AppliedOnce } from '../../server/applied-once.ts';
import type { Outcome } from '../../server/protocol.ts';

describe('AppliedOnce', () => {
  it('applies a key once; a repeat (also while the first runs) gets its outcome, duplicate; a refusal is forgotten; the oldest keys go beyond capacity', async () => {
    const once = new AppliedOnce(2);
    let applied = 0;
    const step = async (): Promise<Outcome> => ({ ok: true, result: { step: ++applied } });
    expect(await once.apply('a\u0000c1', step)).toEqual({ outcome: { ok: true, result: { step: 1 } }, duplicate: false });
    expect(await once.apply('a\u0000c1', step)).toEqual({ outcome: { ok: true, result: { step: 1 } }, duplicate: true });
    expect(applied).toBe(1);
    // both at once, before the first is done: one application
    const both = await Promise.all([once.apply('a\u0000c2', step), once.apply('a\u0000c2', step)]);
    expect(both.map((o) => o.duplicate)).toEqual([false, true]);
    expect(both.map((o) => o.outcome)).toEqual([{ ok: true, result: { step: 2 } }, { ok: true, result: { step: 2 } }]);
    expect(applied).toBe(2);
    // refused: not remembered, so a resend after fixing the cause is applied
    const refused: Outcome = { ok: false, code: 'SG_ERR_STATE', message: 'the run has stopped' };
    expect(await once.apply('a\u0000c3', async () => refused)).toEqual({ outcome: refused, duplicate: false });
    expect(await once.apply('a\u0000c3', step)).toEqual({ outcome: { ok: true, result: { step: 3 } }, duplicate: false });
    // an outcome that says it is a duplicate (a partition's owner remembered the id) is one
    expect(await once.apply('a\u0000c4', async () => ({ ok: true, result: { step: 3 }, duplicate: true }))).toMatchObject({ duplicate: true });
    // capacity 2: c1 and c2 are forgotten by now (c3, c4 remembered)
    expect(await once.apply('a\u0000c1', step)).toEqual({ outcome: { ok: true, result: { step: 4 } }, duplicate: false });
    expect(applied).toBe(4);
  });
});
