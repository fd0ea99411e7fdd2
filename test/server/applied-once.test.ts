// The memory behind "applied at most once per id", shared by a server's CommandLog and a
// cluster partition's owner: one application per key, the same outcome again marked
// duplicate, a resend during the first waits for it, refusals forgotten, bounded; and its
// section of a partition owner's checkpoint, which the next owner takes back (strictly).
import { describe, expect, it } from 'vitest';
import { StreamgradError } from '../../core/errors.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../../pipeline/checkpoint.ts';
import { APPLIED_SECTION, AppliedOnce, commandKey } from '../../server/applied-once.ts';
import type { Outcome } from '../../server/protocol.ts';
import { tinyTrainer } from '../helpers/streams.ts';

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

  it('saves the applied keys with their results in a checkpoint section (newest first, none pending or refused) and takes them back: the same key is a duplicate with the first result, nothing applied; no section (an older checkpoint) remembers nothing', async () => {
    const once = new AppliedOnce();
    let applied = 0;
    const step = async (): Promise<Outcome> => ({ ok: true, result: { step: ++applied, loss: null } });
    await once.apply(commandKey('p0', 'reset-1'), async () => ({ ok: true, result: { step: 20 } }));
    await once.apply(commandKey('p0', 'step-1'), step);
    await once.apply(commandKey('p0', 'bad'), async () => ({ ok: false, code: 'SG_ERR_STATE', message: 'paused only' }));
    let finish!: (outcome: Outcome) => void;
    const pending = once.apply(commandKey('p0', 'ckpt-1'), () => new Promise<Outcome>((resolve) => (finish = resolve)));
    const saved = once.save();
    expect(saved).toEqual([{ key: 'p0\u0000step-1', result: { step: 1, loss: null } }, { key: 'p0\u0000reset-1', result: { step: 20 } }]);
    finish({ ok: true, result: { path: 'nats:x/p0/e1.1' } });
    await pending;
    expect(once.save().map((e) => e.key)).toEqual(['p0\u0000ckpt-1', 'p0\u0000step-1', 'p0\u0000reset-1']);

    // through a real checkpoint's bytes, into the next owner's memory
    const bytes = encodeCheckpoint({ trainer: tinyTrainer(), sourceOffset: 0, sections: { [APPLIED_SECTION]: saved } });
    const next = new AppliedOnce();
    next.restore(decodeCheckpoint(bytes).header.sections[APPLIED_SECTION]);
    expect(await next.apply(commandKey('p0', 'step-1'), step)).toEqual({ outcome: { ok: true, result: { step: 1, loss: null } }, duplicate: true });
    expect(await next.apply(commandKey('p0', 'reset-1'), step)).toEqual({ outcome: { ok: true, result: { step: 20 } }, duplicate: true });
    expect(applied).toBe(1);
    expect(await next.apply(commandKey('p1', 'step-1'), step)).toMatchObject({ duplicate: false }); // another run's id
    expect(applied).toBe(2);
    // a smaller memory keeps the newest; a checkpoint of an older version has no section
    const small = new AppliedOnce(1);
    small.restore(saved);
    expect(small.save()).toEqual([saved[0]]);
    const older = new AppliedOnce();
    older.restore(decodeCheckpoint(encodeCheckpoint({ trainer: tinyTrainer(), sourceOffset: 0 })).header.sections[APPLIED_SECTION]);
    expect(older.save()).toEqual([]);
  });

  it('refuses a malformed section with SG_ERR_CHECKPOINT naming the field and entry, remembering none of it', () => {
    const key = commandKey('p0', 'c-1');
    const cases: [unknown, string, RegExp][] = [
      [{ [key]: { step: 1 } }, 'sections.commands', /a list of applied commands/],
      [Array.from({ length: 10_001 }, (_, i) => ({ key: commandKey('p0', `c-${i}`), result: null })), 'sections.commands', /10001 commands, at most 10000/],
      [[{ key, result: 1 }, 'c-2'], 'sections.commands[1]', /an object \{key, result\}/],
      [[{ key: 'c-1', result: 1 }], 'sections.commands[0].key', /a run and a command id/],
      [[{ key: commandKey('p0', 'x'.repeat(400)), result: 1 }], 'sections.commands[0].key', /at most 385 characters/],
      [[{ key: 7, result: 1 }], 'sections.commands[0].key', /got 7/],
      [[{ key, result: 1 }, { key, result: 2 }], 'sections.commands[1].key', /appears twice/],
      [[{ key }], 'sections.commands[0].result', /a JSON value/],
      [[{ key, result: 'x'.repeat(2000) }], 'sections.commands[0].result', /at most 1024 characters/],
      [[{ key, result: 1, duplicate: true }], 'sections.commands[0]', /fields other than key and result: duplicate/],
    ];
    for (const [section, field, message] of cases) {
      const once = new AppliedOnce();
      let error: unknown;
      try {
        once.restore(section);
      } catch (caught) {
        error = caught;
      }
      expect(error, field).toBeInstanceOf(StreamgradError);
      expect(error, field).toMatchObject({ code: 'SG_ERR_CHECKPOINT', field, message: expect.stringMatching(message) });
      expect(once.save(), field).toEqual([]);
    }
  });
});
