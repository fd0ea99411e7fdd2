import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { eventLine } from '../cli/watch-command.ts';
import { parseServerMessage } from '../clients/node/server-message.ts';
import type { RunEvent } from '../pipeline/run.ts';
import { RUN_EVENT_TYPES, type RunEventType } from '../pipeline/run-event-types.ts';
import type { EventMessage } from '../server/protocol.ts';

/**
 * The run event types are listed once (pipeline/run-event-types.ts); the run's events, the
 * protocol's `event` message, the clients' parser, `streamgrad watch` and PROTOCOL.md must
 * all follow that list, so that a new type is never added in one place only.
 */

/** true when A and B are the same union (each assignable to the other). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
// compile-time: these fail `tsc` (run first by `npm test`) if either side is ever written out by hand and drifts
const runEventsFollow: Same<RunEvent['type'], RunEventType> = true;
const protocolFollows: Same<EventMessage['event'], RunEventType> = true;

const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../server/PROTOCOL.md'), 'utf8');

const event = (type: string) => JSON.stringify({ type: 'event', run: 'a', event: type, step: 3, time: 1_764_355_200_000, detail: { message: 'm' } });

describe('run event types: one list, followed everywhere', () => {
  it('the run and the protocol take their types from the list', () => {
    expect(runEventsFollow && protocolFollows).toBe(true);
    expect(new Set(RUN_EVENT_TYPES).size).toBe(RUN_EVENT_TYPES.length);
  });

  it('the clients\' parser takes every listed type and drops any other', () => {
    for (const type of RUN_EVENT_TYPES) expect(parseServerMessage(event(type)), type).toMatchObject({ type: 'event', event: type });
    expect(parseServerMessage(event('no-such-event'))).toBeNull();
  });

  it('streamgrad watch prints every listed type', () => {
    for (const type of RUN_EVENT_TYPES) expect(eventLine(parseServerMessage(event(type)) as EventMessage)).toContain(`${type} at step 3`);
  });

  it('server/PROTOCOL.md documents every listed type, in the list\'s order, and no other', () => {
    const start = doc.indexOf('`event` is one of ');
    expect(start).toBeGreaterThan(0);
    const paragraph = doc.slice(start, doc.indexOf('\n\n', start));
    // the types are the backticked names outside the parentheses that describe their details
    let depth = 0, outside = '';
    for (const c of paragraph.slice('`event` is one of '.length)) {
      if (c === '(') depth++;
      else if (c === ')') depth--;
      else if (depth === 0) outside += c;
    }
    const documented = [...outside.matchAll(/`([a-z-]+)`/g)].map((m) => m[1]);
    expect(documented).toEqual([...RUN_EVENT_TYPES]);
  });
});
